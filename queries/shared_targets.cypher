// name: shared_targets
// description: Compounds that share targets with a given compound, ranked by the number of shared target genes (Jaccard index alongside).
// param: compound string Compound.id, pert_id, DrugBank id or name (case-insensitive)
// param: top int =10 how many compounds to return
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR c.drugbank_id = $compound
   OR toLower(c.name) = toLower($compound)
MATCH (c)-[:TARGETS]->(g:Gene)
WITH c, collect(DISTINCT g) AS mine
UNWIND mine AS g
MATCH (g)<-[:TARGETS]-(o:Compound) WHERE o <> c
WITH c, mine, o, collect(DISTINCT g.symbol) AS shared
MATCH (o)-[:TARGETS]->(og:Gene)
WITH c, mine, o, shared, count(DISTINCT og) AS n_other
RETURN c.name AS compound, o.id AS other_id, o.name AS other, size(shared) AS n_shared,
       round(toFloat(size(shared)) / (size(mine) + n_other - size(shared)), 3) AS jaccard, shared
ORDER BY n_shared DESC, jaccard DESC, other LIMIT $top
