// name: go_terms_via_targets
// description: GO terms annotated to a compound's target genes, with how many targets carry each term.
// param: compound string Compound.id, pert_id, DrugBank id or name (case-insensitive)
// param: namespace string =any biological_process, molecular_function, cellular_component, or 'any'
// param: top int =20 how many terms to return
MATCH (c:Compound)
WHERE c.id = $compound OR c.pert_id = $compound OR c.drugbank_id = $compound
   OR toLower(c.name) = toLower($compound)
MATCH (c)-[:TARGETS]->(g:Gene)-[:ANNOTATED_WITH]->(t:GOTerm)
WHERE $namespace = 'any' OR t.namespace = $namespace
WITH c, t, collect(DISTINCT g.symbol) AS genes
RETURN c.name AS compound, t.go_id AS go_id, t.name AS term, t.namespace AS namespace,
       size(genes) AS n_targets, genes
ORDER BY n_targets DESC, go_id LIMIT $top
