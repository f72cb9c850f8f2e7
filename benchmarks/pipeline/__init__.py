"""The pipeline benchmark (`make bench`): pages, the loopback site, the runs, the report."""
