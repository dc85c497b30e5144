package authz

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/server/common/authorization"

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/workflows"
)

func TestEveryCallThatChangesARolloutIsHeldToTheRoles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roles.yaml")
	if err := os.WriteFile(path, []byte(`roles:
  - {name: ci, members: [ci@example.com], actions: [deploy, pause, promote, abort, rollback], services: ["*"], environments: [staging]}
  - {name: release managers, members: [carol@example.com], actions: ["*"], services: [shop], environments: ["*"]}
delegates: [dashboard@example.com]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	roles, err := access.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := New(roles)
	writer := func(sub string) *authorization.Claims {
		return &authorization.Claims{Subject: sub, Namespaces: map[string]authorization.Role{"default": authorization.RoleWriter}}
	}
	ex := func(id string) *commonpb.WorkflowExecution { return &commonpb.WorkflowExecution{WorkflowId: id} }
	approve, _ := converter.GetDefaultDataConverter().ToPayloads(workflows.ApprovalRequest{Environment: "production", By: "carol@example.com"})
	args := func(v any) *commonpb.Payloads { p, _ := converter.GetDefaultDataConverter().ToPayloads(v); return p }
	start := func(id string, in workflows.DeploymentInput) any {
		return &workflowservice.StartWorkflowExecutionRequest{Namespace: "default", WorkflowId: id,
			WorkflowType: &commonpb.WorkflowType{Name: workflows.DeploymentWorkflow}, Input: args(in)}
	}
	update := func(id, name string, args *commonpb.Payloads) any {
		return &workflowservice.UpdateWorkflowExecutionRequest{Namespace: "default", WorkflowExecution: ex(id),
			Request: &updatepb.Request{Input: &updatepb.Input{Name: name, Args: args}}}
	}
	for _, c := range []struct {
		who   string
		api   string
		req   any
		allow bool
	}{
		{"ci@example.com", "StartWorkflowExecution", &workflowservice.StartWorkflowExecutionRequest{Namespace: "default", WorkflowId: "deploy/api/staging", WorkflowType: &commonpb.WorkflowType{Name: workflows.DeploymentWorkflow}}, true},
		{"ci@example.com", "StartWorkflowExecution", &workflowservice.StartWorkflowExecutionRequest{Namespace: "default", WorkflowId: "deploy/api/production", WorkflowType: &commonpb.WorkflowType{Name: workflows.DeploymentWorkflow}}, false},
		{"ci@example.com", "UpdateWorkflowExecution", update("deploy/api/production", workflows.Abort, nil), false},
		{"ci@example.com", "SignalWorkflowExecution", &workflowservice.SignalWorkflowExecutionRequest{Namespace: "default", WorkflowExecution: ex("deploy/api/production"), SignalName: workflows.Pause}, false},
		{"ci@example.com", "TerminateWorkflowExecution", &workflowservice.TerminateWorkflowExecutionRequest{Namespace: "default", WorkflowExecution: ex("deploy/api/production")}, false},
		{"ci@example.com", "UpdateWorkflowExecution", update("deploy/api/staging", workflows.Pause, nil), true},
		{"ci@example.com", "UpdateWorkflowExecution", update("release/shop", workflows.Approve, approve), false},
		{"carol@example.com", "UpdateWorkflowExecution", update("release/shop", workflows.Approve, approve), true},
		{"carol@example.com", "StartWorkflowExecution", &workflowservice.StartWorkflowExecutionRequest{Namespace: "default", WorkflowId: "freeze/shop", WorkflowType: &commonpb.WorkflowType{Name: workflows.FreezeWorkflow}}, true},
		// what the run records as who asked must be the token's subject
		{"ci@example.com", "StartWorkflowExecution", start("deploy/api/staging", workflows.DeploymentInput{By: "ci@example.com (emergency: p1)"}), true},
		{"ci@example.com", "StartWorkflowExecution", start("deploy/api/staging", workflows.DeploymentInput{By: "carol@example.com"}), false},
		{"ci@example.com", "UpdateWorkflowExecution", update("deploy/api/staging", workflows.Pause, args(workflows.ControlRequest{By: "alice"})), false},
		// unless the token is a delegate's (the dashboard, which verified the person): then the person is held to the roles
		{"dashboard@example.com", "UpdateWorkflowExecution", update("release/shop", workflows.Approve, args(workflows.ApprovalRequest{Environment: "production", By: "carol@example.com (dashboard)"})), true},
		{"dashboard@example.com", "UpdateWorkflowExecution", update("release/shop", workflows.Approve, args(workflows.ApprovalRequest{Environment: "production", By: "mallory@example.com (dashboard)"})), false},
		{"ci@example.com", "DescribeWorkflowExecution", &workflowservice.DescribeWorkflowExecutionRequest{Namespace: "default", Execution: ex("deploy/api/production")}, true},
		{"ci@example.com", "QueryWorkflow", &workflowservice.QueryWorkflowRequest{Namespace: "default", Execution: ex("deploy/api/production")}, true},
	} {
		res, err := a.Authorize(context.Background(), writer(c.who), &authorization.CallTarget{APIName: "/temporal.api.workflowservice.v1.WorkflowService/" + c.api, Namespace: "default", Request: c.req})
		if err != nil {
			t.Fatal(err)
		}
		if (res.Decision == authorization.DecisionAllow) != c.allow {
			t.Errorf("%s %s %v: %v (%s), want allowed=%t", c.who, c.api, c.req, res.Decision, res.Reason, c.allow)
		}
	}
	// a reader is refused by Temporal's own roles before the roles file
	res, _ := a.Authorize(context.Background(), &authorization.Claims{Subject: "carol@example.com", Namespaces: map[string]authorization.Role{"default": authorization.RoleReader}},
		&authorization.CallTarget{APIName: "/temporal.api.workflowservice.v1.WorkflowService/UpdateWorkflowExecution", Namespace: "default", Request: update("release/shop", workflows.Approve, approve)})
	if res.Decision == authorization.DecisionAllow {
		t.Error("a reader sent an update")
	}
}
