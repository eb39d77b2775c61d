// name: mimicked_genes
// description: The genes whose overexpression signature a compound's consensus signature mimics (MIMICS, score > 0) or opposes (OPPOSES, score < 0), from `moakg derive similarity`, strongest |score| first; known_target says whether the compound targets the gene.
// param: compound string Compound.id, pert_id, DrugBank id or name (case-insensitive)
// param: top int =20 how many genes to return
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR c.drugbank_id = $compound
   OR toLower(c.name) = toLower($compound)
MATCH (c)-[r:MIMICS|OPPOSES]->(g:Gene)
WITH c, g, type(r) AS relation, r.score AS score ORDER BY abs(score) DESC, g.symbol LIMIT $top
RETURN c.name AS compound, g.symbol AS gene, relation, round(score, 3) AS score,
       EXISTS { (c)-[:TARGETS]->(g) } AS known_target
ORDER BY abs(score) DESC, gene
