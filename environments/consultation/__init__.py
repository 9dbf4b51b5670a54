"""`agentrl/Consultation-v0`: a doctor agent interviews a simulated patient and names a diagnosis;
one reward at the end (probability of the correct diagnosis + correctness - question penalties)."""

import gymnasium

if "agentrl/Consultation-v0" not in gymnasium.registry:
    gymnasium.register(id="agentrl/Consultation-v0", entry_point="environments.consultation.env:ConsultationEnv")
