// name: similar_by_signature
// description: Connectivity: compounds whose signatures move the same genes the same way. Score = (same-direction minus opposite-direction shared top genes) / (2 x the query's top genes), from -1 (opposite) to 1 (same).
// param: compound string Compound.id, pert_id or name (case-insensitive)
// param: top int =10 how many compounds to return
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR toLower(c.name) = toLower($compound)
MATCH (c)-[:HAS_SIGNATURE]->(s:Signature)
CALL (s) {
  MATCH (s)-[r:UPREGULATES|DOWNREGULATES]->(g:Gene)
  RETURN collect(CASE type(r) WHEN 'UPREGULATES' THEN g.symbol END) AS up,
         collect(CASE type(r) WHEN 'DOWNREGULATES' THEN g.symbol END) AS down
}
MATCH (s)-[r1:UPREGULATES|DOWNREGULATES]->(g:Gene)<-[r2:UPREGULATES|DOWNREGULATES]-(t:Signature)<-[:HAS_SIGNATURE]-(o:Compound)
WHERE o <> c
WITH c, s, size(up) + size(down) AS n_query, o, t,
     sum(CASE WHEN type(r1) = type(r2) THEN 1 ELSE -1 END) AS net
WITH c, o, max(toFloat(net) / n_query) AS score, count(DISTINCT t) AS n_signatures_compared
RETURN c.name AS compound, o.id AS other_id, o.name AS other, round(score, 3) AS score, n_signatures_compared
ORDER BY score DESC, other LIMIT $top
