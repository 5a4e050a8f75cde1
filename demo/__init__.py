"""The demo of the whole retraining loop on real news text (`make demo`); not shipped with the product."""
