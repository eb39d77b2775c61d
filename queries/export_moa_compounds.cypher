// name: export_moa_compounds
// description: Keys of the compounds with a given mechanism of action (any source), sorted.
// param: moa  string  MoA.name, e.g. 'HDAC inhibitor'
MATCH (c:Compound)-[:HAS_MOA]->(:MoA {name: $moa})
RETURN DISTINCT c.id AS key ORDER BY key
