"""The store layer: the only code that talks to MongoDB, S3 and Redis.

Views and tasks call services; services call stores; stores call pymongo, boto3 and redis-py.
"""
