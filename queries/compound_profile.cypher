// name: compound_profile
// description: One compound: identity, sources, targets, MoAs, signatures, and the genes its signatures most often move up and down.
// param: compound string Compound.id (InChIKey), LINCS pert_id, DrugBank id, name or synonym (case-insensitive)
// param: top int =10 how many up- and down-regulated genes to list
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR $compound IN coalesce(c.pert_ids, [])
   OR c.drugbank_id = $compound OR toLower(c.name) = toLower($compound)
   OR toLower($compound) IN [s IN coalesce(c.synonyms, []) | toLower(s)]
CALL (c) {
  OPTIONAL MATCH (c)-[:TARGETS]->(g:Gene)
  WITH DISTINCT g ORDER BY g.symbol
  RETURN collect(g.symbol) AS targets
}
CALL (c) {
  OPTIONAL MATCH (c)-[:HAS_MOA]->(m:MoA)
  WITH DISTINCT m ORDER BY m.name
  RETURN collect(m.name) AS moas
}
CALL (c) {
  OPTIONAL MATCH (c)-[:HAS_SIGNATURE]->(s:Signature)
  WITH s ORDER BY s.sig_id
  RETURN count(s) AS n_signatures, collect(s.sig_id)[..5] AS signatures
}
CALL (c) {
  OPTIONAL MATCH (c)-[:HAS_SIGNATURE]->(:Signature)-[r:UPREGULATES]->(g:Gene)
  WITH g, count(r) AS n, avg(r.z) AS z WHERE g IS NOT NULL
  ORDER BY n DESC, z DESC, g.symbol LIMIT $top
  RETURN collect(g.symbol) AS top_up
}
CALL (c) {
  OPTIONAL MATCH (c)-[:HAS_SIGNATURE]->(:Signature)-[r:DOWNREGULATES]->(g:Gene)
  WITH g, count(r) AS n, avg(r.z) AS z WHERE g IS NOT NULL
  ORDER BY n DESC, z ASC, g.symbol LIMIT $top
  RETURN collect(g.symbol) AS top_down
}
RETURN c.id AS id, c.name AS name, c.pert_id AS pert_id, c.drugbank_id AS drugbank_id, c.sources AS sources,
       targets, moas, n_signatures, signatures, top_up, top_down
ORDER BY id
