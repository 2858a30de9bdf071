"""Training side: models, the training loop, evaluation and run directories.

With ``edgekit.export`` this is the only package that imports torch; it does so inside its modules, which are
imported only by the commands that train or evaluate.
"""
