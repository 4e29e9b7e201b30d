"""The studio: `musicrgan serve`, an HTTP API and a page over a home folder of corpora, runs
and results. Every long action is a job: the musicrgan command line in a child process,
recorded in SQLite (jobs.py); the home folder guards every path a request names (home.py)."""
