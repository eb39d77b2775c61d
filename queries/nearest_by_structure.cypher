// name: nearest_by_structure
// description: A compound's nearest neighbours by structure (SIMILAR_STRUCTURE: Morgan-fingerprint Tanimoto, from `moakg derive similarity`) with their MoAs and targets.
// param: compound string Compound.id, pert_id, DrugBank id or name (case-insensitive)
// param: top int =10 how many neighbours to return
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR c.drugbank_id = $compound
   OR toLower(c.name) = toLower($compound)
MATCH (c)-[s:SIMILAR_STRUCTURE]-(o:Compound)
WITH c, o, s.score AS tanimoto ORDER BY tanimoto DESC, o.id LIMIT $top
CALL (o) {
  OPTIONAL MATCH (o)-[:HAS_MOA]->(m:MoA)
  WITH DISTINCT m ORDER BY m.name
  RETURN collect(m.name) AS moas
}
CALL (o) {
  OPTIONAL MATCH (o)-[:TARGETS]->(g:Gene)
  WITH DISTINCT g ORDER BY g.symbol
  RETURN collect(g.symbol) AS targets
}
RETURN c.name AS compound, o.id AS other_id, o.name AS other, round(tanimoto, 3) AS tanimoto, moas, targets
ORDER BY tanimoto DESC, other_id
