"""Which mixer and optimizer types the peer compares: expt's types, as `expt types` lists them
(derived from expt's type descriptors, core/config/type_descriptors.cpp), that expt_peer.py
implements. No torch import, so the drivers (compare.py, compare_mixers.py) stay light."""

import json
import subprocess

# What expt_peer.py implements: PeerModel's mixers and make_optimizer's optimizers.
PEER_MIXERS = ("attention", "gla", "deltanet", "deltaproduct", "gated_deltaproduct", "none")
PEER_OPTIMIZERS = ("adamw", "muon")


def expt_types(expt):
    """`expt types`: {"mixers": {name: {key: default}}, "optimizers": {...}}, in expt's order."""
    return json.loads(subprocess.run([expt, "types"], check=True, capture_output=True, text=True).stdout)


def comparable(expt):
    """(mixers, optimizers): expt's types, in expt's order, that the peer implements."""
    types = expt_types(expt)
    return ([m for m in types["mixers"] if m in PEER_MIXERS],
            [o for o in types["optimizers"] if o in PEER_OPTIMIZERS])


def check_choices(expt, mixers=(), optimizers=()):
    """Exits naming the choice when a requested type is not one of expt's or the peer lacks it."""
    types = expt_types(expt)
    for kind, chosen, known, peer in (("mixer", mixers, types["mixers"], PEER_MIXERS),
                                      ("optimizer", optimizers, types["optimizers"], PEER_OPTIMIZERS)):
        for name in chosen:
            if name not in known:
                raise SystemExit(f"{name}: not an expt {kind} type (expt types: {', '.join(known)})")
            if name not in peer:
                raise SystemExit(f"{name}: the peer does not implement this {kind} (peer: {', '.join(peer)})")
