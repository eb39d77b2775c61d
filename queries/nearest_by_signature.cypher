// name: nearest_by_signature
// description: A compound's nearest neighbours by consensus L1000 signature (SIMILAR_SIGNATURE: Spearman correlation of landmark z-vectors, from `moakg derive similarity`; negative = opposite effects) with their MoAs and targets, strongest |score| first.
// param: compound string Compound.id, pert_id, DrugBank id or name (case-insensitive)
// param: top int =10 how many neighbours to return
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR c.drugbank_id = $compound
   OR toLower(c.name) = toLower($compound)
MATCH (c)-[s:SIMILAR_SIGNATURE]-(o:Compound)
WITH c, o, s.score AS spearman ORDER BY abs(spearman) DESC, o.id LIMIT $top
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
RETURN c.name AS compound, o.id AS other_id, o.name AS other, round(spearman, 3) AS spearman, moas, targets
ORDER BY abs(spearman) DESC, other_id
