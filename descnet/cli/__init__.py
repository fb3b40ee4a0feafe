"""The ``descnet`` command line (see :mod:`descnet.cli.main`)."""
