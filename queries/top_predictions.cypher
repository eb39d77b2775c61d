// name: top_predictions
// description: A model run's top-ranked predictions per test compound (PREDICTED_MOA or PREDICTED_TARGET), with whether the graph already knows the answer.
// param: run  string  ModelRun.id (see `moakg query run model_runs`)
// `known` is true when the predicted MoA / target is already asserted in the graph (HAS_MOA / TARGETS):
// for test compounds those edges were hidden from the model, so `known` marks a correct prediction.
MATCH (c:Compound)-[p:PREDICTED_MOA|PREDICTED_TARGET]->(t)
WHERE p.run = $run
RETURN c.id AS compound, c.name AS name, type(p) AS kind, coalesce(t.name, t.symbol) AS predicted,
       round(p.score, 4) AS score, p.rank AS rank,
       CASE type(p)
         WHEN 'PREDICTED_MOA' THEN EXISTS { (c)-[:HAS_MOA]->(t) }
         ELSE EXISTS { (c)-[:TARGETS]->(t) }
       END AS known
ORDER BY compound, kind, rank
