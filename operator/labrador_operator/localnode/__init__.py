"""labrador-local: a node agent that plays the kubelet for one node by running bound pods as local processes.

See docs/local-runner.md. Modules: ``kube`` (a small REST client on the kubeconfig), ``node`` (registration and
heartbeat), ``admission`` (what the runner refuses), ``expand``/``env`` (Kubernetes env and ``$(VAR)`` rules),
``volumes`` (volumes as host directories), ``sandbox`` (the per-pod mount namespace, stdlib only),
``status`` (pod status shapes), ``pods`` (one pod's lifecycle), ``main`` (the agent).
"""
