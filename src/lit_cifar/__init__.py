"""Lightning + Hydra image classification on CIFAR-10 and 52-class handwritten characters."""

import logging

# A font family matplotlib cannot find (its cache being rebuilt by another process, say) falls back to DejaVu Sans
# with a warning per family and figure: nothing a user can act on, and it splits a run's console lines.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
