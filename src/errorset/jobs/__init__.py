"""The jobs behind the commands: config in, science functions called, results tracked and written.

Each job takes a resolved :class:`~errorset.config.Config` and is what the
command line, ``MLproject`` and ``dvc.yaml`` run; notebooks may call them too.
"""
