"""The API's part of infra/template.yaml, transformed the way CloudFormation will."""
import json

PUBLIC = {("/health", "get"), ("/openapi.json", "get"), ("/docs", "get"),
          ("/unsubscribe/{token}", "get"), ("/unsubscribe/{token}", "post")}


def test_the_jwt_authorizer_trusts_the_templates_cognito_client(resources):
    body = resources["HttpApi"]["Properties"]["Body"]
    authorizer = body["components"]["securitySchemes"]["CognitoJwt"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt" and authorizer["identitySource"] == "$request.header.Authorization"
    config = authorizer["jwtConfiguration"]
    assert config["audience"] == [{"Ref": "UserPoolClient"}]
    assert config["issuer"] == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}


def test_only_public_routes_skip_the_authorizer(resources):
    paths = resources["HttpApi"]["Properties"]["Body"]["paths"]
    security = {(path, method): op["security"] for path, ops in paths.items() for method, op in ops.items()}
    assert {route for route, s in security.items() if s == [{"NONE": []}]} == PUBLIC
    assert security[("/{proxy+}", "x-amazon-apigateway-any-method")] == [{"CognitoJwt": []}]
    assert set(security) == PUBLIC | {("/{proxy+}", "x-amazon-apigateway-any-method")}


def test_the_team_claim_cannot_be_chosen_by_a_user(resources):
    pool = resources["UserPool"]["Properties"]
    (team,) = [a for a in pool["Schema"] if a["Name"] == "team_id"]
    assert team["Mutable"] is False
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    client = resources["UserPoolClient"]["Properties"]
    assert "custom:team_id" in client["ReadAttributes"] and "custom:team_id" not in client["WriteAttributes"]


def test_the_api_function_may_touch_only_its_four_tables_and_send_test_emails(resources):
    function = resources["ApiFunction"]["Properties"]
    assert function["Handler"] == "app.lambda_handler" and function["Timeout"] <= 29
    role = resources["ApiFunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    targets = json.dumps([s["Resource"] for s in statements])
    for table in ("ContactsTable", "PipelinesTable", "RunsTable", "TasksTable"):
        assert table in targets
    assert '"*"' not in targets and "Queue" not in targets
    actions = {a for s in statements for a in s["Action"]}
    assert actions <= {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
                       "secretsmanager:GetSecretValue", "ses:SendEmail", "ses:SendRawEmail"}
    # SES only for POST /pipelines/{id}/steps/{n}/test: as the EmailFrom identity, through the configuration set.
    (sending,) = [s for s in statements if any(a.startswith("ses:") for a in s["Action"])]
    assert sending["Sid"] == "TestSendAsTheEmailFromIdentity"
    assert sorted(sending["Action"]) == ["ses:SendEmail", "ses:SendRawEmail"]
    resources_text = json.dumps(sending["Resource"])
    assert len(sending["Resource"]) == 2 and "identity/${Domain}" in resources_text and "configuration-set/" in resources_text
    assert "identity/*" not in resources_text
    (keys,) = [s for s in statements if s["Sid"] == "SigningKeys"]
    assert keys["Action"] == ["secretsmanager:GetSecretValue"] and "Table" not in json.dumps(keys["Resource"])
    (tasks,) = [s for s in statements if s["Sid"] == "Tasks"]
    assert "dynamodb:PutItem" not in tasks["Action"] and "dynamodb:DeleteItem" not in tasks["Action"]
