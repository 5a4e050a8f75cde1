"""Running a classifier: device and precision choice, and the one model runner.

Training takes its device and precision plan from here; evaluation, serving and
drift run models through :class:`modeling.runner.ClassifierRunner`.
"""
