#!/usr/bin/env python3
"""CDK entry point: ``npx aws-cdk@2 deploy`` runs it through ``cdk.json`` (context: stage, web_origin...)."""

import aws_cdk as cdk

from infra.stack import build

app = cdk.App()
build(app)
app.synth()
