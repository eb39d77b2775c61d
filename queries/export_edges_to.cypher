// name: export_edges_to
// description: Relationships of one type that end at the given nodes (by key), with weight and source, for k-hop subgraphs.
// param: rel               string  HAS_SIGNATURE, IN_CELL, UPREGULATES, DOWNREGULATES, INTERACTS_WITH, ANNOTATED_WITH, IS_A, PART_OF, TARGETS or HAS_MOA
// param: keys              list    key values of the end nodes
// param: min_string_score  float   INTERACTS_WITH edges with a combined_score below it are left out (null keeps all; no score: kept)
// weight is z for UP/DOWNREGULATES, combined_score (0-1000) for INTERACTS_WITH, null otherwise.
// Labels and types cannot be parameters without losing the key index, so there is one UNION branch
// per label or type; the guard (a projected parameter, tested before the MATCH) skips the others at no cost.
UNWIND $keys AS k
CALL (k) {
  WITH k, $rel AS t WHERE t = 'HAS_SIGNATURE'
  MATCH (a:Compound)-[r:HAS_SIGNATURE]->(:Signature {sig_id: k})
  RETURN a.id AS src, k AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'IN_CELL'
  MATCH (a:Signature)-[r:IN_CELL]->(:CellLine {cell_id: k})
  RETURN a.sig_id AS src, k AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'UPREGULATES'
  MATCH (a:Signature)-[r:UPREGULATES]->(:Gene {symbol: k})
  RETURN a.sig_id AS src, k AS dst, r.z AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'DOWNREGULATES'
  MATCH (a:Signature)-[r:DOWNREGULATES]->(:Gene {symbol: k})
  RETURN a.sig_id AS src, k AS dst, r.z AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'INTERACTS_WITH'
  MATCH (a:Gene)-[r:INTERACTS_WITH]->(:Gene {symbol: k})
    WHERE $min_string_score IS NULL OR r.combined_score IS NULL OR r.combined_score >= $min_string_score
  RETURN a.symbol AS src, k AS dst, r.combined_score AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'ANNOTATED_WITH'
  MATCH (a:Gene)-[r:ANNOTATED_WITH]->(:GOTerm {go_id: k})
  RETURN a.symbol AS src, k AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'IS_A'
  MATCH (a:GOTerm)-[r:IS_A]->(:GOTerm {go_id: k})
  RETURN a.go_id AS src, k AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'PART_OF'
  MATCH (a:GOTerm)-[r:PART_OF]->(:GOTerm {go_id: k})
  RETURN a.go_id AS src, k AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'TARGETS'
  MATCH (a:Compound)-[r:TARGETS]->(:Gene {symbol: k})
  RETURN a.id AS src, k AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'HAS_MOA'
  MATCH (a:Compound)-[r:HAS_MOA]->(:MoA {name: k})
  RETURN a.id AS src, k AS dst, null AS weight, r.source AS source
}
RETURN src, dst, weight, source
