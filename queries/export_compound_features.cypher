// name: export_compound_features
// description: SMILES of the given compounds and the landmark z-vectors of all their signatures, for Compound node features.
// param: keys  list  Compound.id values
UNWIND $keys AS k
MATCH (c:Compound {id: k})
OPTIONAL MATCH (c)-[:HAS_SIGNATURE]->(s:Signature)
RETURN k AS key, c.smiles AS smiles, [z IN collect(s.z_landmark) WHERE z IS NOT NULL] AS zs
