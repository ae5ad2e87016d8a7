"""The naive baseline: the sequential collector a user writes instead of running trailpipe."""
import gzip

import boto3
import orjson
import redis


def collect(endpoint: str, redis_url: str, bucket: str, prefix: str, **s3_options) -> int:
    s3 = boto3.client("s3", endpoint_url=endpoint, **s3_options)
    r = redis.Redis.from_url(redis_url)
    events = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json.gz") and "/CloudTrail-Digest/" not in obj["Key"]:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                pipe = r.pipeline(transaction=False)  # one round trip per file
                for record in orjson.loads(gzip.decompress(body))["Records"]:
                    pipe.xadd("trailpipe:events", {"event": orjson.dumps(record), "object": obj["Key"]})
                events += len(pipe.execute())
    r.close()
    return events
