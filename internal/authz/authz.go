// Package authz is Switchyard's authorizer for the Temporal server: on top
// of Temporal's own (namespace roles from the JWT's permissions), it holds
// every call that changes a rollout, rollback, release or freeze to the
// roles file (internal/access), by the caller's verified subject. It runs in
// the frontend, so no client — the CLI, CI, the dashboard, the `temporal`
// CLI — can get round it.
package authz

import (
	"context"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/server/common/authorization"

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/workflows"
)

// Authorizer decides with Temporal's default authorizer first, then the roles.
type Authorizer struct {
	Roles *access.Policy
	base  authorization.Authorizer
}

// New returns the authorizer for a roles file.
func New(roles *access.Policy) *Authorizer {
	return &Authorizer{Roles: roles, base: authorization.NewDefaultAuthorizer()}
}

// Authorize implements authorization.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, claims *authorization.Claims, target *authorization.CallTarget) (authorization.Result, error) {
	res, err := a.base.Authorize(ctx, claims, target)
	if err != nil || res.Decision != authorization.DecisionAllow {
		return res, err
	}
	action, service, env := Action(target.Request)
	if action == "" || claims == nil || claims.System&authorization.RoleAdmin != 0 {
		return res, nil
	}
	who := claims.Subject
	if by := workflows.IdentityOf(claimedBy(target.Request)); by != "" && !strings.EqualFold(by, claims.Subject) {
		if !a.Roles.Delegate(claims.Subject) {
			// what the run records as who asked must be who the token is
			return authorization.Result{Decision: authorization.DecisionDeny,
				Reason: fmt.Sprintf("the request says it is by %s, but the token is %s's: send your own name (the CLI sends the token's subject)", by, claims.Subject)}, nil
		}
		who = by // a delegate (the dashboard) acts for the person it verified
	}
	if err := a.Roles.Allows(access.Identity{Subject: who}, action, service, env); err != nil {
		return authorization.Result{Decision: authorization.DecisionDeny, Reason: err.Error()}, nil
	}
	return res, nil
}

// claimedBy is the "by" a start's input or a control's argument names
// (every Switchyard request carries one), "" when none.
func claimedBy(req any) string {
	var p *commonpb.Payloads
	switch r := req.(type) {
	case *workflowservice.StartWorkflowExecutionRequest:
		p = r.GetInput()
	case *workflowservice.SignalWithStartWorkflowExecutionRequest:
		p = r.GetSignalInput()
	case *workflowservice.UpdateWorkflowExecutionRequest:
		p = r.GetRequest().GetInput().GetArgs()
	case *workflowservice.SignalWorkflowExecutionRequest:
		p = r.GetInput()
	}
	if len(p.GetPayloads()) == 0 {
		return ""
	}
	var v struct {
		By string `json:"by"`
	}
	if converter.GetDefaultDataConverter().FromPayload(p.GetPayloads()[0], &v) != nil {
		return ""
	}
	return v.By
}

// Action names what a request does to which service (or release) in which
// environment, from the workflow IDs Switchyard uses (workflows/names.go);
// "" for a request that changes no rollout (reads, workers' own calls).
func Action(req any) (action, service, env string) {
	switch r := req.(type) {
	case *workflowservice.StartWorkflowExecutionRequest:
		return started(r.GetWorkflowType().GetName(), r.GetWorkflowId())
	case *workflowservice.SignalWithStartWorkflowExecutionRequest:
		return started(r.GetWorkflowType().GetName(), r.GetWorkflowId())
	case *workflowservice.UpdateWorkflowExecutionRequest:
		in := r.GetRequest().GetInput()
		action, target, env := control(in.GetName(), r.GetWorkflowExecution().GetWorkflowId())
		if action == access.Approve && len(in.GetArgs().GetPayloads()) > 0 {
			// a release's approval names its environment in the request
			var ar workflows.ApprovalRequest
			if converter.GetDefaultDataConverter().FromPayload(in.GetArgs().GetPayloads()[0], &ar) == nil {
				env = ar.Environment
			}
		}
		return action, target, env
	case *workflowservice.SignalWorkflowExecutionRequest:
		return control(r.GetSignalName(), r.GetWorkflowExecution().GetWorkflowId())
	case *workflowservice.TerminateWorkflowExecutionRequest:
		return control(workflows.Abort, r.GetWorkflowExecution().GetWorkflowId())
	case *workflowservice.RequestCancelWorkflowExecutionRequest:
		return control(workflows.Abort, r.GetWorkflowExecution().GetWorkflowId())
	case *workflowservice.ResetWorkflowExecutionRequest:
		return control(workflows.Abort, r.GetWorkflowExecution().GetWorkflowId())
	}
	return "", "", ""
}

// started is the action of starting a workflow.
func started(workflowType, id string) (string, string, string) {
	kind, name, env := split(id)
	switch {
	case workflowType == workflows.DeploymentWorkflow || kind == "deploy":
		return access.Deploy, name, env
	case workflowType == workflows.RollbackWorkflow || kind == "rollback" || kind == "retire":
		return access.Rollback, name, env
	case workflowType == workflows.ReleaseWorkflow || kind == "release":
		return access.Deploy, name, ""
	case workflowType == workflows.FreezeWorkflow || kind == "freeze":
		return access.Freeze, name, ""
	}
	return "", "", ""
}

// control is the action of an Update or Signal to a workflow.
func control(name, id string) (string, string, string) {
	kind, target, env := split(id)
	if kind != "deploy" && kind != "rollback" && kind != "release" && kind != "freeze" {
		return "", "", ""
	}
	switch name {
	case workflows.Pause, workflows.Resume:
		return access.Pause, target, env
	case workflows.Abort:
		if kind == "freeze" {
			return access.Freeze, target, ""
		}
		return access.Abort, target, env
	case workflows.Promote:
		return access.Promote, target, env
	case workflows.Escalate:
		return access.Rollback, target, env
	case workflows.Approve, workflows.Reject:
		return access.Approve, target, env
	}
	// any other control of a rollout (release-done, a freeze's end, ...)
	// is the release's or a freeze's own business: held to abort
	if kind == "freeze" {
		return access.Freeze, target, ""
	}
	return access.Abort, target, env
}

// split reads "deploy/api/production" as (deploy, api, production).
func split(id string) (kind, name, env string) {
	parts := strings.SplitN(id, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}
