"""Tools around Loopgate, kept out of its runtime install: the simulator, the evaluator, the
benchmark, the demo report, and the process and PostgreSQL helpers the tests share with them."""
