"""`la audit`: the QA autonomy audit (shared/spec/qa-autonomy-audit.md) run by the product itself."""
