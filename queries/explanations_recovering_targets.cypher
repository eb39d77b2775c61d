// name: explanations_recovering_targets
// description: Explained predictions whose stored paths pass through a gene the compound is known to target (TARGETS in the graph: DrugBank, the Hub; hidden from a phenotype-setting model for its test compounds), with the rank and metapath of the first such path.
// param: run string ='' ModelRun.id of the explanations ('' = every run)
MATCH (e:Explanation)-[:EXPLAINS]->(c:Compound)
WHERE $run = '' OR e.run = $run
MATCH (e)-[:HAS_PATH]->(p:ExplanationPath)-[s:STEP]->(g:Gene)<-[:TARGETS]-(c)
WHERE s.order > 0
WITH e, c, p, collect(DISTINCT g.symbol) AS targets
ORDER BY p.rank
WITH e, c, collect({rank: p.rank, metapath: p.metapath, targets: targets}) AS hits
RETURN e.run AS run, c.id AS compound, c.name AS name, e.method AS method, e.kind AS kind,
       e.prediction AS prediction, hits[0].rank AS first_rank, hits[0].metapath AS metapath,
       hits[0].targets AS targets_on_path, size(hits) AS paths_through_targets
ORDER BY run, method, first_rank, compound
