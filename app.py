#!/usr/bin/env python3
"""CDK entry point: ``npx aws-cdk@2 deploy`` runs it through ``cdk.json`` (context: stage, web_origin...).

cdk-nag's AwsSolutions pack validates every synthesis: an unacknowledged finding stops it.
"""

import aws_cdk as cdk

from infra.nag import add_checks
from infra.stack import build

app = cdk.App()
build(app)
add_checks(app)
app.synth()
