"""Tools around the k8s-lab program: its bring-up graph, engine event-log reports.

Nothing here is part of the Pulumi program; ``__main__.py`` and ``components/`` never import it.
"""
