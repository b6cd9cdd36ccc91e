"""Pure helpers: no AWS, no Chalice, no I/O. Time (injectable), the quantile sketch, accepted text, varints."""
