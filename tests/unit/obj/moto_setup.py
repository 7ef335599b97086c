#!/usr/bin/env python3
"""Prepare a moto S3 server started with INITIAL_NO_AUTH_ACTION_COUNT=4, so that it verifies
the SigV4 signature of every later request: an IAM user with an access key allowed everything
(three unauthenticated actions), then the bucket "bkt" (signed with the new key). Prints
"<access key> <secret key>".   moto_setup.py ENDPOINT
"""
import json
import sys

import boto3

ep = sys.argv[1]
iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="nixl")
key = iam.create_access_key(UserName="nixl")["AccessKey"]
iam.put_user_policy(UserName="nixl", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket="bkt")
print(key["AccessKeyId"], key["SecretAccessKey"])
