"""The Modamoda CDK app: one stack, one construct per concern (see ``infra.stack``)."""

import os

# jsii prints a banner on every run under Node 20; the app works the same, so keep synth output readable.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
