"""What belongs to a Region or to the whole fleet rather than to one InferenceDeployment.

The operator's view of every Region (its cluster client, feed readers and metrics reader) and
what one pass observes through it. The controller's per-deployment pass reads the world here;
this package depends only on ``clusters``, ``metrics``, ``signals`` and ``api``, never on the
controller.
"""
