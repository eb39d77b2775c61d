// name: explanation_paths
// description: Stored path explanations drawn as real graph paths: each ExplanationPath's node sequence is matched back over the original relationships (not the STEP links), one path per stored path, with its explanation's method, prediction, score and fidelity.
// param: run string ='' ModelRun.id of the explanations ('' = every run)
// param: compound string ='' Compound.id to show ('' = every explained compound)
// param: top int =5 how many paths per explanation (rank <= top)
// A path may end with a reference compound's HAS_MOA step (the label its vote read): a real relationship too.
// The Browser draws `path`; the columns beside it say which explanation and rank it is.
MATCH (e:Explanation)-[:EXPLAINS]->(c:Compound)
WHERE ($run = '' OR e.run = $run) AND ($compound = '' OR c.id = $compound)
MATCH (e)-[:FOR]->(pred)
MATCH (e)-[:HAS_PATH]->(ep:ExplanationPath)
WHERE ep.rank <= $top
CALL (ep) {
  MATCH (ep)-[s:STEP]->(n)
  WITH s, n ORDER BY s.order
  RETURN collect(n) AS ns, collect(s) AS ss
}
CALL (ns, ss) {
  WITH ns, ss WHERE size(ns) = 2
  WITH ns[0] AS a, ns[1] AS b, ss
  MATCH path = (a)-[r1]-(b)
  WHERE type(r1) = ss[1].rel_type AND (startNode(r1) = a) = ss[1].forward
  RETURN path LIMIT 1
  UNION
  WITH ns, ss WHERE size(ns) = 3
  WITH ns[0] AS a, ns[1] AS b, ns[2] AS d, ss
  MATCH path = (a)-[r1]-(b)-[r2]-(d)
  WHERE type(r1) = ss[1].rel_type AND (startNode(r1) = a) = ss[1].forward
    AND type(r2) = ss[2].rel_type AND (startNode(r2) = b) = ss[2].forward
  RETURN path LIMIT 1
  UNION
  WITH ns, ss WHERE size(ns) = 4
  WITH ns[0] AS a, ns[1] AS b, ns[2] AS d, ns[3] AS f, ss
  MATCH path = (a)-[r1]-(b)-[r2]-(d)-[r3]-(f)
  WHERE type(r1) = ss[1].rel_type AND (startNode(r1) = a) = ss[1].forward
    AND type(r2) = ss[2].rel_type AND (startNode(r2) = b) = ss[2].forward
    AND type(r3) = ss[3].rel_type AND (startNode(r3) = d) = ss[3].forward
  RETURN path LIMIT 1
  UNION
  WITH ns, ss WHERE size(ns) = 5
  WITH ns[0] AS a, ns[1] AS b, ns[2] AS d, ns[3] AS f, ns[4] AS g, ss
  MATCH path = (a)-[r1]-(b)-[r2]-(d)-[r3]-(f)-[r4]-(g)
  WHERE type(r1) = ss[1].rel_type AND (startNode(r1) = a) = ss[1].forward
    AND type(r2) = ss[2].rel_type AND (startNode(r2) = b) = ss[2].forward
    AND type(r3) = ss[3].rel_type AND (startNode(r3) = d) = ss[3].forward
    AND type(r4) = ss[4].rel_type AND (startNode(r4) = f) = ss[4].forward
  RETURN path LIMIT 1
}
RETURN e.run AS run, c.id AS compound, e.method AS method, e.kind AS kind, e.prediction AS prediction,
       round(e.score, 4) AS prediction_score, round(e.fidelity_plus, 4) AS fidelity_plus,
       round(e.fidelity_minus, 4) AS fidelity_minus, ep.rank AS rank, round(ep.score, 4) AS path_score,
       ep.metapath AS metapath, path
ORDER BY run, compound, method, kind, prediction, rank
