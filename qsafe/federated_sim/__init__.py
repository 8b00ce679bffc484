"""The federated-learning backdoor *simulation*: a research harness, not the protocol.

What lives here: the SMS-spam scenario and its data (:mod:`~qsafe.federated_sim.scenario`), the attacks
(:mod:`~qsafe.federated_sim.attacks`), the model (:mod:`~qsafe.federated_sim.model`), the training loop
(:mod:`~qsafe.federated_sim.simulation`), the same loop over encrypted updates
(:mod:`~qsafe.federated_sim.encrypted_sim`), the attack x defense matrix and its report
(:mod:`~qsafe.federated_sim.report`, :mod:`~qsafe.federated_sim.experiment`) and the simulated clients' seed-derived
keys (:mod:`~qsafe.federated_sim.clients`). It is what ``qsafe fl simulate`` and ``qsafe fl report`` run.

The production protocol it exercises is :mod:`qsafe.federated` (HE context, signed encrypted updates, aggregation,
encrypted norms, audit trail) with its robust-aggregation defenses (:mod:`qsafe.federated.defenses`, the
``qsafe.defenses`` registry); this package depends on that one, never the other way round (a test checks it).
Importing this package imports nothing heavy: torch comes with :mod:`~qsafe.federated_sim.model`.
"""
