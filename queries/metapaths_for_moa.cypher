// name: metapaths_for_moa
// description: The metapaths that explain predictions of one MoA most often across compounds: how many explanations have a path of that metapath among their top paths, and the paths' mean score.
// param: moa string MoA name (MoA.name, as predicted)
// param: run string ='' ModelRun.id of the explanations ('' = every run)
// param: top int =10 how many metapaths to list
MATCH (e:Explanation {kind: 'moa'})-[:HAS_PATH]->(p:ExplanationPath)
WHERE e.prediction = $moa AND ($run = '' OR e.run = $run)
RETURN p.metapath AS metapath, count(DISTINCT e) AS explanations, count(p) AS paths,
       round(avg(p.score), 4) AS mean_score, collect(DISTINCT e.method) AS methods
ORDER BY explanations DESC, paths DESC, metapath
LIMIT $top
