package router

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/switchyard/switchyard/internal/awsapi"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// ALB splits traffic with an Application Load Balancer: the listener's
// default action (or one rule's action) forwards to the two slots' target
// groups with weights. Weights are set whole and read back.
type ALB struct {
	c               *elb.Client
	Listener, Rule  string
	BlueTG, GreenTG string
}

// NewALB returns the ALB router of a spec, on the worker's AWS credentials.
func NewALB(ctx context.Context, a spec.ALB) (*ALB, error) {
	cfg, err := awsapi.Config(ctx, a.Region)
	if err != nil {
		return nil, err
	}
	return &ALB{c: elb.NewFromConfig(cfg), Listener: a.ListenerARN, Rule: a.RuleARN, BlueTG: a.TargetGroups.Blue, GreenTG: a.TargetGroups.Green}, nil
}

// Ensure checks that the listener (or rule) exists: the target groups and
// the slots' registration in them are the ECS services'.
func (a *ALB) Ensure(ctx context.Context) error {
	_, err := a.actions(ctx)
	return err
}

// SetWeights forwards w to the two target groups.
func (a *ALB) SetWeights(ctx context.Context, w rollout.Weights) error {
	act := []types.Action{{Type: types.ActionTypeEnumForward, ForwardConfig: &types.ForwardActionConfig{TargetGroups: []types.TargetGroupTuple{
		{TargetGroupArn: aws.String(a.BlueTG), Weight: aws.Int32(int32(w.Blue))},
		{TargetGroupArn: aws.String(a.GreenTG), Weight: aws.Int32(int32(w.Green))},
	}}}}
	var err error
	if a.Rule != "" {
		_, err = a.c.ModifyRule(ctx, &elb.ModifyRuleInput{RuleArn: aws.String(a.Rule), Actions: act})
		if err != nil {
			return awsapi.Explain("alb", "elasticloadbalancing:ModifyRule", err)
		}
	} else if _, err = a.c.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(a.Listener), DefaultActions: act}); err != nil {
		return awsapi.Explain("alb", "elasticloadbalancing:ModifyListener", err)
	}
	return nil
}

// Weights reads the forward weights of the two target groups.
func (a *ALB) Weights(ctx context.Context) (rollout.Weights, error) {
	acts, err := a.actions(ctx)
	if err != nil {
		return rollout.Weights{}, err
	}
	var w rollout.Weights
	for _, act := range acts {
		if act.Type != types.ActionTypeEnumForward {
			continue
		}
		if act.ForwardConfig == nil { // a plain forward to one target group: all of it
			switch aws.ToString(act.TargetGroupArn) {
			case a.BlueTG:
				return rollout.Weights{Blue: 100}, nil
			case a.GreenTG:
				return rollout.Weights{Green: 100}, nil
			}
			continue
		}
		for _, tg := range act.ForwardConfig.TargetGroups {
			switch aws.ToString(tg.TargetGroupArn) {
			case a.BlueTG:
				w.Blue = int(aws.ToInt32(tg.Weight))
			case a.GreenTG:
				w.Green = int(aws.ToInt32(tg.Weight))
			}
		}
	}
	return w, nil
}

// Counters: an ALB's per-target-group counters are in CloudWatch, which
// analysis does not read; Prometheus queries or probes judge the slots.
func (a *ALB) Counters(context.Context) (map[rollout.Slot]rollout.Counters, error) {
	return nil, ErrNoCounters
}

func (a *ALB) actions(ctx context.Context) ([]types.Action, error) {
	if a.Rule != "" {
		out, err := a.c.DescribeRules(ctx, &elb.DescribeRulesInput{RuleArns: []string{a.Rule}})
		if err != nil {
			return nil, awsapi.Explain("alb", "elasticloadbalancing:DescribeRules", err)
		}
		if len(out.Rules) != 1 {
			return nil, &awsapi.Refused{Err: fmt.Errorf("alb: rule %s not found", a.Rule)}
		}
		return out.Rules[0].Actions, nil
	}
	out, err := a.c.DescribeListeners(ctx, &elb.DescribeListenersInput{ListenerArns: []string{a.Listener}})
	if err != nil {
		return nil, awsapi.Explain("alb", "elasticloadbalancing:DescribeListeners", err)
	}
	if len(out.Listeners) != 1 {
		return nil, &awsapi.Refused{Err: fmt.Errorf("alb: listener %s not found", a.Listener)}
	}
	return out.Listeners[0].DefaultActions, nil
}
