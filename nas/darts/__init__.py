"""DARTS: the bilevel architecture step and the genotype derived from α."""
