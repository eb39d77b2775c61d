// name: internal_compound_ids
// description: Every compound's LINCS pert_ids and DrugBank ids as properties (any source), for matching consensus perturbagens during ingest.
MATCH (c:Compound)
WHERE c.pert_id IS NOT NULL OR c.pert_ids IS NOT NULL OR c.drugbank_id IS NOT NULL OR c.drugbank_ids IS NOT NULL
RETURN c.id AS id,
       [p IN coalesce(c.pert_ids, []) + [c.pert_id] WHERE p IS NOT NULL] AS pert_ids,
       [d IN coalesce(c.drugbank_ids, []) + [c.drugbank_id] WHERE d IS NOT NULL] AS drugbank_ids
