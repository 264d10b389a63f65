"""`dynamodb:TABLE`: the ledger's events and promotion leases in one DynamoDB table;
every append is a conditional write on `seq`, so two writers never take the same place."""

from __future__ import annotations

import json
from typing import Any

from release.errors import CheckFailed, RemoteError, aws_error_code, aws_error_message
from release.ledger.chain import row_json


class DynamoStore:
    """`dynamodb:TABLE`: partition key `pk` (S), sort key `seq` (N).

    Events live under `pk = "events"`; every put is conditional on the `seq` not existing.
    Leases are items `pk = "lease#ENV", seq = 0`, written with conditional puts.
    """

    def __init__(self, table: str, client: Any = None) -> None:
        import boto3

        self.table = table
        self.location = f"dynamodb:{table}"
        self.client = client or boto3.client("dynamodb")
        self._ensure_table()

    def _err(self, op: str, exc: Exception) -> RemoteError:
        return RemoteError(
            f"DynamoDB {op} on table {self.table} failed: {aws_error_message(exc)} "
            "(check AWS credentials, region and the table)"
        )

    def _ensure_table(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.describe_table(TableName=self.table)
            return
        except ClientError as exc:
            if aws_error_code(exc) != "ResourceNotFoundException":
                raise self._err("DescribeTable", exc) from None
        except BotoCoreError as exc:
            raise self._err("DescribeTable", exc) from None
        try:
            self.client.create_table(
                TableName=self.table,
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "seq", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "seq", "AttributeType": "N"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ResourceInUseException":
                raise self._err("CreateTable", exc) from None
        except BotoCoreError as exc:
            raise self._err("CreateTable", exc) from None

    @staticmethod
    def _item(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "pk": {"S": "events"},
            "seq": {"N": str(row["seq"])},
            "event": {"S": json.dumps(row, sort_keys=True)},
        }

    def _query(self, forward: bool, limit: int | None) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "events"}},
            "ScanIndexForward": forward,
            "ConsistentRead": True,
        }
        if limit:
            kwargs["Limit"] = limit
        try:
            while True:
                resp = self.client.query(**kwargs)
                for i in resp.get("Items", []):
                    seq = (i.get("seq") or {}).get("N")
                    out.append(
                        row_json(self.location, seq, "event", (i.get("event") or {}).get("S"))
                    )
                if limit or "LastEvaluatedKey" not in resp:
                    return out
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise self._err("Query", exc) from None

    def read_all(self) -> list[dict[str, Any]]:
        return self._query(True, None)

    def last(self) -> dict[str, Any] | None:
        rows = self._query(False, 1)
        return rows[0] if rows else None

    def insert(self, row: dict[str, Any]) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._item(row),
                ConditionExpression="attribute_not_exists(seq)",
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise self._err("PutItem", exc) from None
        except BotoCoreError as exc:
            raise self._err("PutItem", exc) from None
        return True

    @staticmethod
    def _lease_key(env: str) -> dict[str, Any]:
        return {"pk": {"S": f"lease#{env}"}, "seq": {"N": "0"}}

    def read_lease(self, env: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            item = self.client.get_item(
                TableName=self.table, Key=self._lease_key(env), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise self._err("GetItem (lease)", exc) from None
        if not item:
            return None
        try:
            row = json.loads(item["lease"]["S"])
        except (KeyError, TypeError, ValueError):
            raise CheckFailed(
                f"ledger {self.location}: the promotion lease of {env!r} is not JSON"
            ) from None
        return row if isinstance(row, dict) else {}

    def write_lease(
        self, env: str, row: dict[str, Any], *, replace: str | None, now: float
    ) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        item = {
            **self._lease_key(env),
            "token": {"S": str(row["token"])},
            "lease": {"S": json.dumps(row, sort_keys=True)},
            "expires": {"N": repr(float(row["expires"]))},
        }
        if replace is None:
            cond: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(pk) OR expires <= :now",
                "ExpressionAttributeValues": {":now": {"N": repr(now)}},
            }
        else:
            cond = {
                "ConditionExpression": "#t = :t",
                "ExpressionAttributeNames": {"#t": "token"},
                "ExpressionAttributeValues": {":t": {"S": replace}},
            }
        try:
            self.client.put_item(TableName=self.table, Item=item, **cond)
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise self._err("PutItem (lease)", exc) from None
        except BotoCoreError as exc:
            raise self._err("PutItem (lease)", exc) from None
        return True

    def drop_lease(self, env: str, token: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_item(
                TableName=self.table,
                Key=self._lease_key(env),
                ConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":t": {"S": token}},
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise self._err("DeleteItem (lease)", exc) from None
        except BotoCoreError as exc:
            raise self._err("DeleteItem (lease)", exc) from None

    # notes: the latest state of something, outside the chain (release.guard's last check)
    @staticmethod
    def _note_key(key: str) -> dict[str, Any]:
        return {"pk": {"S": f"note#{key}"}, "seq": {"N": "0"}}

    def read_note(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            item = self.client.get_item(
                TableName=self.table, Key=self._note_key(key), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise self._err("GetItem (note)", exc) from None
        if not item:
            return None
        row = row_json(self.location, key, "note", (item.get("note") or {}).get("S"))
        return row if isinstance(row, dict) else None

    def write_note(self, key: str, row: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(
                TableName=self.table,
                Item={**self._note_key(key), "note": {"S": json.dumps(row, sort_keys=True)}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._err("PutItem (note)", exc) from None
