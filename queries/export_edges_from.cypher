// name: export_edges_from
// description: Relationships of one type that start at the given nodes (by key), with weight and source, for the PyG exporter.
// param: rel               string  HAS_SIGNATURE, IN_CELL, UPREGULATES, DOWNREGULATES, INTERACTS_WITH, ANNOTATED_WITH, IS_A, PART_OF, TARGETS or HAS_MOA
// param: keys              list    key values of the start nodes
// param: min_string_score  float   INTERACTS_WITH edges with a combined_score below it are left out (null keeps all; no score: kept)
// weight is z for UP/DOWNREGULATES, combined_score (0-1000) for INTERACTS_WITH, null otherwise.
// Labels and types cannot be parameters without losing the key index, so there is one UNION branch
// per label or type; the guard (a projected parameter, tested before the MATCH) skips the others at no cost.
UNWIND $keys AS k
CALL (k) {
  WITH k, $rel AS t WHERE t = 'HAS_SIGNATURE'
  MATCH (:Compound {id: k})-[r:HAS_SIGNATURE]->(b:Signature)
  RETURN k AS src, b.sig_id AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'IN_CELL'
  MATCH (:Signature {sig_id: k})-[r:IN_CELL]->(b:CellLine)
  RETURN k AS src, b.cell_id AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'UPREGULATES'
  MATCH (:Signature {sig_id: k})-[r:UPREGULATES]->(b:Gene)
  RETURN k AS src, b.symbol AS dst, r.z AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'DOWNREGULATES'
  MATCH (:Signature {sig_id: k})-[r:DOWNREGULATES]->(b:Gene)
  RETURN k AS src, b.symbol AS dst, r.z AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'INTERACTS_WITH'
  MATCH (:Gene {symbol: k})-[r:INTERACTS_WITH]->(b:Gene)
    WHERE $min_string_score IS NULL OR r.combined_score IS NULL OR r.combined_score >= $min_string_score
  RETURN k AS src, b.symbol AS dst, r.combined_score AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'ANNOTATED_WITH'
  MATCH (:Gene {symbol: k})-[r:ANNOTATED_WITH]->(b:GOTerm)
  RETURN k AS src, b.go_id AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'IS_A'
  MATCH (:GOTerm {go_id: k})-[r:IS_A]->(b:GOTerm)
  RETURN k AS src, b.go_id AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'PART_OF'
  MATCH (:GOTerm {go_id: k})-[r:PART_OF]->(b:GOTerm)
  RETURN k AS src, b.go_id AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'TARGETS'
  MATCH (:Compound {id: k})-[r:TARGETS]->(b:Gene)
  RETURN k AS src, b.symbol AS dst, null AS weight, r.source AS source
  UNION ALL
  WITH k, $rel AS t WHERE t = 'HAS_MOA'
  MATCH (:Compound {id: k})-[r:HAS_MOA]->(b:MoA)
  RETURN k AS src, b.name AS dst, null AS weight, r.source AS source
}
RETURN src, dst, weight, source
