package test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/awsapi"
	"github.com/switchyard/switchyard/internal/platform"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	workerpkg "github.com/switchyard/switchyard/worker"
)

// No AWS and no AWS emulator can run here: these tests run the ecs platform
// and the alb router against a stand-in HTTP server in the test that speaks
// the two wire protocols the AWS SDK uses for them — ECS's JSON 1.1 (the
// operation in X-Amz-Target) and Elastic Load Balancing v2's Query protocol
// (form-encoded Action, XML answers) — for the calls the adapters make, and
// records them. The adapters have not been run against AWS itself.

const (
	standInSecret = "sEcReT-aws-key-that-must-never-show"
	tgBlue        = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api-blue/0123456789abcdef"
	tgGreen       = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api-green/fedcba9876543210"
	listenerARN   = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/api/50dc6c495c0c9188/f2f7dc8efc522ab2"
)

type ecsService struct {
	taskDef          string
	desired, running int32
	rollout          string // IN_PROGRESS, COMPLETED, FAILED
	reason           string
	polls            int
	events           []string
}

// standInAWS is the stand-in: ECS services, task definitions, one listener.
type standInAWS struct {
	mu       sync.Mutex
	calls    []string
	services map[string]*ecsService
	taskDefs map[string]map[string]any
	weights  map[string]int // target group → weight
	// failure modes
	neverSteady, breaker bool
	throttle             map[string]int // action → how many times to answer ThrottlingException
	deny                 map[string]bool
	bodies               []string
	seen                 []string // every call taken
}

func newStandInAWS(t *testing.T) (*standInAWS, string) {
	s := &standInAWS{services: map[string]*ecsService{}, taskDefs: map[string]map[string]any{}, weights: map[string]int{tgBlue: 100, tgGreen: 0},
		throttle: map[string]int{}, deny: map[string]bool{}}
	td := "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:1"
	s.taskDefs[td] = map[string]any{"family": "api", "taskDefinitionArn": td, "networkMode": "awsvpc", "cpu": "256", "memory": "512",
		"requiresCompatibilities": []any{"FARGATE"}, "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecution",
		"containerDefinitions": []any{map[string]any{"name": "api", "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:v1", "essential": true,
			"portMappings": []any{map[string]any{"containerPort": 8080}}, "environment": []any{map[string]any{"name": "LOG_FORMAT", "value": "json"}}}}}
	s.services["api-blue"] = &ecsService{taskDef: td, desired: 2, running: 2, rollout: "COMPLETED"}
	s.services["api-green"] = &ecsService{taskDef: td, desired: 0, running: 0, rollout: "COMPLETED"}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIASTANDINEXAMPLE01")
	t.Setenv("AWS_SECRET_ACCESS_KEY", standInSecret)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	return s, srv.URL
}

func (s *standInAWS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, r.Header.Get("Authorization")+"\n"+string(body))
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		op := strings.TrimPrefix(target, "AmazonEC2ContainerServiceV20141113.")
		s.calls = append(s.calls, "ecs:"+op)
		if code, msg := s.failure("ecs:" + op); code != "" {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Header().Set("X-Amzn-ErrorType", code)
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
			return
		}
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		out := s.ecs(op, in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	form, _ := url.ParseQuery(string(body))
	op := form.Get("Action")
	s.calls = append(s.calls, "elasticloadbalancing:"+op)
	if code, msg := s.failure("elasticloadbalancing:" + op); code != "" {
		if code == "ThrottlingException" {
			code = "Throttling"
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>1</RequestId></ErrorResponse>`, code, xmlEscape(msg))
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprint(w, s.elb(op, form))
}

// failure answers a denied or throttled call.
func (s *standInAWS) failure(action string) (code, msg string) {
	if s.deny[action] {
		return map[bool]string{true: "AccessDeniedException", false: "AccessDenied"}[strings.HasPrefix(action, "ecs:")],
			"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: " + action
	}
	if s.throttle[action] > 0 {
		s.throttle[action]--
		return "ThrottlingException", "Rate exceeded"
	}
	return "", ""
}

func (s *standInAWS) ecs(op string, in map[string]any) map[string]any {
	switch op {
	case "DescribeServices":
		var list []any
		for _, n := range in["services"].([]any) {
			sv := s.services[n.(string)]
			if sv == nil {
				continue
			}
			if sv.rollout == "IN_PROGRESS" {
				sv.polls++
				switch {
				case s.breaker && sv.polls >= 2:
					sv.rollout, sv.reason = "FAILED", "ECS deployment circuit breaker: tasks failed to start."
					sv.events = append([]string{"(service " + n.(string) + ") (deployment ecs-svc/1) deployment failed: tasks failed to start."}, sv.events...)
				case !s.neverSteady && !s.breaker && sv.polls >= 2:
					sv.rollout, sv.running = "COMPLETED", sv.desired
					sv.events = append([]string{"(service " + n.(string) + ") has reached a steady state."}, sv.events...)
				}
			}
			var evs []any
			for _, e := range sv.events {
				evs = append(evs, map[string]any{"createdAt": 1764633600.0, "message": e})
			}
			list = append(list, map[string]any{"serviceName": n, "taskDefinition": sv.taskDef, "desiredCount": sv.desired, "runningCount": sv.running,
				"deployments": []any{map[string]any{"status": "PRIMARY", "taskDefinition": sv.taskDef, "rolloutState": sv.rollout,
					"rolloutStateReason": sv.reason, "desiredCount": sv.desired, "runningCount": sv.running}}, "events": evs})
		}
		return map[string]any{"services": list, "failures": []any{}}
	case "DescribeTaskDefinition":
		return map[string]any{"taskDefinition": s.taskDefs[in["taskDefinition"].(string)]}
	case "RegisterTaskDefinition":
		arn := fmt.Sprintf("arn:aws:ecs:eu-west-1:123456789012:task-definition/%s:%d", in["family"], len(s.taskDefs)+1)
		in["taskDefinitionArn"] = arn
		s.taskDefs[arn] = in
		return map[string]any{"taskDefinition": in}
	case "UpdateService":
		sv := s.services[in["service"].(string)]
		if td, ok := in["taskDefinition"].(string); ok {
			sv.taskDef, sv.rollout, sv.reason, sv.polls, sv.running = td, "IN_PROGRESS", "", 0, 0
		}
		if d, ok := in["desiredCount"].(float64); ok {
			sv.desired = int32(d)
			if d == 0 {
				sv.running = 0
			}
		}
		return map[string]any{"service": map[string]any{"serviceName": in["service"], "taskDefinition": sv.taskDef, "desiredCount": sv.desired}}
	}
	return map[string]any{}
}

func (s *standInAWS) elb(op string, form url.Values) string {
	const ns = `xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"`
	listener := func() string {
		return fmt.Sprintf(`<Listeners><member><ListenerArn>%s</ListenerArn><DefaultActions><member><Type>forward</Type><ForwardConfig><TargetGroups>`+
			`<member><TargetGroupArn>%s</TargetGroupArn><Weight>%d</Weight></member><member><TargetGroupArn>%s</TargetGroupArn><Weight>%d</Weight></member>`+
			`</TargetGroups></ForwardConfig></member></DefaultActions></member></Listeners>`, listenerARN, tgBlue, s.weights[tgBlue], tgGreen, s.weights[tgGreen])
	}
	switch op {
	case "DescribeListeners":
		return fmt.Sprintf(`<DescribeListenersResponse %s><DescribeListenersResult>%s</DescribeListenersResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeListenersResponse>`, ns, listener())
	case "ModifyListener":
		for i := 1; ; i++ {
			p := fmt.Sprintf("DefaultActions.member.1.ForwardConfig.TargetGroups.member.%d.", i)
			arn := form.Get(p + "TargetGroupArn")
			if arn == "" {
				break
			}
			s.weights[arn], _ = strconv.Atoi(form.Get(p + "Weight"))
		}
		return fmt.Sprintf(`<ModifyListenerResponse %s><ModifyListenerResult>%s</ModifyListenerResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></ModifyListenerResponse>`, ns, listener())
	case "DescribeTargetHealth":
		slot := "api-blue"
		if form.Get("TargetGroupArn") == tgGreen {
			slot = "api-green"
		}
		var b strings.Builder
		if sv := s.services[slot]; sv.rollout == "COMPLETED" {
			for i := range sv.running {
				fmt.Fprintf(&b, `<member><Target><Id>10.0.1.%d</Id><Port>8080</Port></Target><TargetHealth><State>healthy</State></TargetHealth></member>`, i+1)
			}
		}
		return fmt.Sprintf(`<DescribeTargetHealthResponse %s><DescribeTargetHealthResult><TargetHealthDescriptions>%s</TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeTargetHealthResponse>`, ns, b.String())
	}
	return fmt.Sprintf(`<ErrorResponse %s><Error><Code>InvalidAction</Code><Message>%s</Message></Error></ErrorResponse>`, ns, op)
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (s *standInAWS) took() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.calls
	s.seen = append(s.seen, out...)
	s.calls = nil
	return out
}

// iamActions reads the actions deployments/ecs/iam-policy.json grants.
func iamActions(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../deployments/ecs/iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Statement []struct{ Action []string } }
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, st := range p.Statement {
		for _, a := range st.Action {
			out[a] = true
		}
	}
	return out
}

// ecsSpec is the ECS example service, resolved as the CLI resolves it.
func ecsSpec(t *testing.T, extra string) *spec.Service {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.yaml")
	if err := os.WriteFile(path, []byte(`service: api
platform: ecs
ecs:
  cluster: prod
  image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/api
  container: api
  desiredCount: 2
  timeout: 2s
run:
  ports: {blue: 9401, green: 9402}
router:
  kind: alb
  alb:
    listenerArn: `+listenerARN+`
    targetGroups: {blue: `+tgBlue+`, green: `+tgGreen+`}
`+extra+`
environments:
  production: {}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := starter.ResolveSpec(path, "production")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ecsAdapters(t *testing.T) (*platform.ECS, router.Router) {
	t.Helper()
	s := ecsSpec(t, "")
	p, err := platform.NewECS(s)
	if err != nil {
		t.Fatal(err)
	}
	p.Poll = 20 * time.Millisecond
	r, err := router.New(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

// noSecret fails the test if the secret key shows in an error.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), standInSecret) {
		t.Fatalf("the AWS secret key is in an error: %v", err)
	}
}

// A rollout's calls, in order, against the stand-in: green gets a new task
// definition revision running v2 and reaches steady state with healthy
// targets; the listener's weights go 10 → 100 % green, each read back;
// blue is scaled to 0. Provisioning v2 again registers nothing.
func TestECSRolloutCallsAndWeightsAgainstAStandInAWSEndpoint(t *testing.T) {
	aws, _ := newStandInAWS(t)
	p, r := ecsAdapters(t)
	ctx := context.Background()
	policy := iamActions(t)
	defer func() { // every call the adapters made is granted by the shipped policy
		for _, c := range aws.seen {
			if !policy[c] {
				t.Errorf("deployments/ecs/iam-policy.json does not grant %s, which a rollout calls", c)
			}
		}
	}()
	in, err := p.Provision(ctx, rollout.Green, "v2", "", nil)
	noSecret(t, err)
	if err != nil {
		t.Fatal(err)
	}
	provision := aws.took()
	t.Logf("Provision green v2: %s", strings.Join(provision, ", "))
	want := []string{"ecs:DescribeServices", "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ecs:UpdateService", "ecs:DescribeServices"}
	if len(provision) < len(want)+1 || strings.Join(provision[:len(want)], ",") != strings.Join(want, ",") || provision[len(provision)-1] != "elasticloadbalancing:DescribeTargetHealth" {
		t.Fatalf("Provision's calls: %v", provision)
	}
	aws.mu.Lock()
	green := aws.services["api-green"]
	td := aws.taskDefs[green.taskDef]
	aws.mu.Unlock()
	cd := td["containerDefinitions"].([]any)[0].(map[string]any)
	envs, _ := json.Marshal(cd["environment"])
	if cd["image"] != "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:v2" || green.desired != 2 || td["executionRoleArn"] == nil ||
		!strings.Contains(string(envs), `"VERSION","value":"v2"`) || !strings.Contains(string(envs), `"LOG_FORMAT","value":"json"`) {
		t.Fatalf("green runs %s (desired %d): image %v, environment %s", green.taskDef, green.desired, cd["image"], envs)
	}
	if in.Version != "v2" || !in.Running {
		t.Fatalf("instance: %+v", in)
	}
	for _, pct := range []int{10, 25, 50, 75, 100} {
		w := rollout.Weights{Blue: 100 - pct, Green: pct}
		if err := r.SetWeights(ctx, w); err != nil {
			t.Fatal(err)
		}
		if err := router.Verify(ctx, r, spec.RouterALB, w); err != nil { // as the Shift activity does
			t.Fatal(err)
		}
		aws.mu.Lock()
		got := rollout.Weights{Blue: aws.weights[tgBlue], Green: aws.weights[tgGreen]}
		aws.mu.Unlock()
		if got != w {
			t.Fatalf("the listener forwards %s, want %s", got, w)
		}
	}
	shifts := aws.took()
	t.Logf("five steps: %s", strings.Join(shifts, ", "))
	if len(shifts) != 10 || shifts[0] != "elasticloadbalancing:ModifyListener" || shifts[1] != "elasticloadbalancing:DescribeListeners" {
		t.Fatalf("a weight change is one ModifyListener and its read-back: %v", shifts)
	}
	if err := p.Retire(ctx, rollout.Blue); err != nil {
		t.Fatal(err)
	}
	retire := aws.took()
	aws.mu.Lock()
	blueDesired := aws.services["api-blue"].desired
	aws.mu.Unlock()
	if strings.Join(retire, ",") != "ecs:DescribeServices,ecs:UpdateService" || blueDesired != 0 {
		t.Fatalf("Retire blue: %v, desired %d", retire, blueDesired)
	}
	t.Logf("Retire blue: %s", strings.Join(retire, ", "))
	if _, err := p.Provision(ctx, rollout.Green, "v2", "", nil); err != nil {
		t.Fatal(err)
	}
	again := aws.took()
	for _, c := range again {
		if c == "ecs:RegisterTaskDefinition" || c == "ecs:UpdateService" {
			t.Fatalf("provisioning the version it runs changed it: %v", again)
		}
	}
	t.Logf("Provision green v2 again: %s", strings.Join(again, ", "))
	if st, err := p.Inspect(ctx, rollout.Green); err != nil || st.Version != "v2" {
		t.Fatalf("Inspect green: %+v %v", st, err)
	}
	for _, b := range aws.bodies {
		if strings.Contains(b, standInSecret) {
			t.Fatal("the secret key was sent in a request")
		}
	}
}

// A deployment that never reaches steady state fails at ecs.timeout with
// the service's state and events; one the circuit breaker rolls back fails
// at once with its reason and events, and is not retried.
func TestECSDeploymentsThatNeverSettleOrRollBackFailClearlyAgainstAStandInAWSEndpoint(t *testing.T) {
	aws, _ := newStandInAWS(t)
	p, _ := ecsAdapters(t)
	aws.neverSteady = true
	start := time.Now()
	_, err := p.Provision(context.Background(), rollout.Green, "v2", "", nil)
	noSecret(t, err)
	if err == nil || !strings.Contains(err.Error(), "api-green not steady after 2s (ecs.timeout): rollout in_progress, 0 of 2 tasks running") {
		t.Fatalf("never steady: %v", err)
	}
	t.Logf("never steady, after %s: %v", time.Since(start).Round(time.Millisecond), err)

	aws.neverSteady, aws.breaker = false, true
	_, err = p.Provision(context.Background(), rollout.Green, "v3", "", nil)
	noSecret(t, err)
	var bad *platform.BadInputError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "failed (ECS deployment circuit breaker: tasks failed to start.)") ||
		!strings.Contains(err.Error(), "deployment failed: tasks failed to start.") {
		t.Fatalf("circuit breaker: %v", err)
	}
	t.Logf("circuit breaker: %v", err)
}

// Throttling is retried by the SDK and the call goes through; access
// denied names the IAM action and the policy to grant, and is final.
func TestECSThrottlingIsRetriedAndAccessDeniedNamesTheActionAgainstAStandInAWSEndpoint(t *testing.T) {
	aws, _ := newStandInAWS(t)
	p, r := ecsAdapters(t)
	aws.throttle["ecs:UpdateService"] = 1
	aws.throttle["elasticloadbalancing:ModifyListener"] = 1
	if _, err := p.Provision(context.Background(), rollout.Green, "v2", "", nil); err != nil {
		t.Fatalf("a throttled UpdateService was not retried: %v", err)
	}
	if err := r.SetWeights(context.Background(), rollout.Weights{Blue: 90, Green: 10}); err != nil {
		t.Fatalf("a throttled ModifyListener was not retried: %v", err)
	}
	calls := strings.Join(aws.took(), ",")
	if strings.Count(calls, "ecs:UpdateService") != 2 || strings.Count(calls, "elasticloadbalancing:ModifyListener") != 2 {
		t.Fatalf("want each throttled call made twice: %s", calls)
	}
	t.Logf("throttled once, then through: %s", calls)

	aws.deny["elasticloadbalancing:ModifyListener"] = true
	err := r.SetWeights(context.Background(), rollout.Weights{Blue: 75, Green: 25})
	noSecret(t, err)
	var refused *awsapi.Refused
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "elasticloadbalancing:ModifyListener was refused (AccessDenied") ||
		!strings.Contains(err.Error(), "deployments/ecs/iam-policy.json") {
		t.Fatalf("access denied: %v", err)
	}
	t.Logf("access denied: %v", err)
	aws.deny["ecs:RegisterTaskDefinition"] = true
	_, err = p.Provision(context.Background(), rollout.Green, "v3", "", nil)
	noSecret(t, err)
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "ecs:RegisterTaskDefinition was refused (AccessDeniedException") {
		t.Fatalf("access denied: %v", err)
	}
	t.Logf("access denied: %v", err)
}

// TestECSRolloutThroughTheWorkflowAgainstAStandInAWSEndpoint: a whole
// Deployment on a real worker and Temporal server, the ECS services and
// the ALB being the stand-in's (two demo-app processes stand for the ALB's
// per-slot test listeners the checks reach). It promotes, the listener
// forwards 100 % to green, and neither the secret key nor the access key
// ID is anywhere in the workflow's history.
func TestECSRolloutThroughTheWorkflowAgainstAStandInAWSEndpoint(t *testing.T) {
	aws, _ := newStandInAWS(t)
	// no smoke check: the demo-app processes are not the version ECS runs
	s := ecsSpec(t, "checks: {health: {successes: 1, interval: 100ms}}\nrollout: {steps: [50, 100], bake: 0s, scaleDownDelay: 0s}")
	for _, port := range []int{s.Run.Ports.Blue, s.Run.Ports.Green} {
		cmd := exec.Command(filepath.Join(bins, "good", "demo-app"))
		cmd.Env = append(os.Environ(), "HOST=127.0.0.1", fmt.Sprintf("PORT=%d", port), "VERSION=listener")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	queue := "q-ecs-standin"
	c := dial(t)
	w := workerpkg.New(c, workerpkg.Config{TaskQueue: queue, StateDir: t.TempDir()})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	st := &starter.Starter{C: c, TaskQueue: queue}
	run, err := st.Deploy(context.Background(), s, "v2", "test", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o, err := st.Wait(ctx, run)
	if err != nil || o.Kind != "" {
		t.Fatalf("the rollout: %v %+v", err, o)
	}
	aws.mu.Lock()
	weights := rollout.Weights{Blue: aws.weights[tgBlue], Green: aws.weights[tgGreen]}
	aws.mu.Unlock()
	if weights != (rollout.Weights{Green: 100}) || o.Status.Weights != weights {
		t.Fatalf("after the rollout the listener forwards %s (status %s)", weights, o.Status.Weights)
	}
	b, err := json.Marshal(historyOf(t, c, run))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{standInSecret, "AKIASTANDINEXAMPLE01"} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("the workflow history holds %s", secret)
		}
	}
	t.Logf("promoted v2 on ECS (stand-in): %s; calls: %s; history %d bytes, no credential in it", weights, strings.Join(aws.took(), ", "), len(b))
}
