"""Lightning + Hydra image classification on CIFAR-10 and 52-class handwritten characters."""
