"""A Flower app using qsafe: the ClientApp adds qsafe_mod, the ServerApp wraps FedAvg with qsafe."""
