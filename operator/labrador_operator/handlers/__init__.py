"""kopf registrations, and nothing else: each module's ``register(registry, runtime)`` adds its handlers to a kopf
registry, closed over the controller runtime (controller/) that does the work. Importing a module here registers
nothing; ``labrador_operator.main`` imports each one explicitly and registers them in order (startup first: kopf runs
startup handlers in registration order, and ``configure`` must run before the sampler starts)."""
