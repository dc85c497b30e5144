package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/switchyard/switchyard/internal/platform"
)

// kubeAPI is a real kube-apiserver (built by `make kube-bins`) on a real
// etcd, both on 127.0.0.1. There is no kubelet, scheduler or
// controller-manager: the test stands in for them (see standIn).
type kubeAPI struct {
	t                  *testing.T
	dir                string
	url                string
	admin              kubernetes.Interface
	dyn                dynamic.Interface
	adminKC            string // kubeconfig files
	workerKC, nobodyKC string
}

func startKube(t *testing.T, withCRDs bool) *kubeAPI {
	t.Helper()
	apiserver, _ := filepath.Abs(filepath.Join(toolsDir, "kube-apiserver"))
	if _, err := os.Stat(apiserver); err != nil {
		t.Skip("no kube-apiserver in bin/tools: run `make kube-bins` (.ci/run does)")
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (apt-get install etcd-server); .ci/run installs it")
	}
	k := &kubeAPI{t: t, dir: t.TempDir()}
	ec, ep := freePort(t), freePort(t)
	run := func(name string, bin string, args ...string) {
		cmd := exec.Command(bin, args...)
		log, _ := os.Create(filepath.Join(k.dir, name+".log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	run("etcd", etcd, "--data-dir", filepath.Join(k.dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ec), "--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ec),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ep), "--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ep),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", ep))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	k.write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	k.write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	k.write("tokens.csv", []byte("admin-token,admin,admin,\"system:masters\"\nnobody-token,nobody,nobody\n"))
	sp := freePort(t)
	k.url = fmt.Sprintf("https://127.0.0.1:%d", sp)
	run("apiserver", apiserver, fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", ec), "--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", sp), "--cert-dir="+filepath.Join(k.dir, "certs"),
		// an allocation range for Services' cluster IPs only: nothing is ever sent there
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+filepath.Join(k.dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(k.dir, "sa.key"), "--token-auth-file="+filepath.Join(k.dir, "tokens.csv"),
		"--authorization-mode=RBAC", "--endpoint-reconciler-type=none")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 2 * time.Second}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, k.url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(k.dir, "apiserver.log"))
			t.Fatalf("kube-apiserver not ready at %s:\n%s", k.url, tail(string(b), 30))
		}
	}
	k.adminKC = k.kubeconfig("admin", "admin-token")
	k.nobodyKC = k.kubeconfig("nobody", "nobody-token")
	cfg, err := clientcmd.BuildConfigFromFlags("", k.adminKC)
	if err != nil {
		t.Fatal(err)
	}
	k.admin = kubernetes.NewForConfigOrDie(cfg)
	k.dyn = dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	for _, ns := range []string{"shop", "switchyard"} {
		if _, err := k.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// the worker is the ServiceAccount the shipped RBAC binds, with a real token: it may do only what rbac.yaml grants
	if _, err := k.admin.CoreV1().ServiceAccounts("switchyard").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "switchyard-worker"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := k.admin.CoreV1().ServiceAccounts("switchyard").CreateToken(ctx, "switchyard-worker", &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.workerKC = k.kubeconfig("worker", tok.Status.Token)
	k.apply("../deployments/kubernetes/rbac.yaml")
	if withCRDs {
		k.InstallGatewayCRDs("standard")
	}
	return k
}

func (k *kubeAPI) write(name string, b []byte) {
	k.t.Helper()
	if err := os.WriteFile(filepath.Join(k.dir, name), b, 0o600); err != nil {
		k.t.Fatal(err)
	}
}

func (k *kubeAPI) kubeconfig(user, token string) string {
	k.t.Helper()
	path := filepath.Join(k.dir, user+".kubeconfig")
	k.write(user+".kubeconfig", []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: %s, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: %s}}]
current-context: test
`, k.url, user, token, user)))
	return path
}

// apply creates every object of a multi-document YAML file as the admin.
func (k *kubeAPI) apply(path string) {
	k.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		k.t.Fatal(err)
	}
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			k.t.Fatalf("%s: %v", path, err)
		}
		if obj.Object == nil || obj.GetKind() == "" {
			continue
		}
		gvk := obj.GroupVersionKind()
		res := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"}
		var ri dynamic.ResourceInterface = k.dyn.Resource(res)
		if obj.GetNamespace() != "" {
			ri = k.dyn.Resource(res).Namespace(obj.GetNamespace())
		}
		_, err := ri.Create(context.Background(), &obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// replaced, as kubectl apply would (a CRD's other channel)
			var cur *unstructured.Unstructured
			if cur, err = ri.Get(context.Background(), obj.GetName(), metav1.GetOptions{}); err == nil {
				obj.SetResourceVersion(cur.GetResourceVersion())
				_, err = ri.Update(context.Background(), &obj, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			k.t.Fatalf("%s: create %s %s: %v", path, gvk.Kind, obj.GetName(), err)
		}
	}
}

// InstallGatewayCRDs installs (or replaces) the Gateway API's CRDs of a
// channel, standard or experimental, from the module this build uses, and
// waits until they are served.
func (k *kubeAPI) InstallGatewayCRDs(channel string) {
	k.t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		k.t.Fatal(err)
	}
	for _, name := range []string{"gateway.networking.k8s.io_gateways.yaml", "gateway.networking.k8s.io_httproutes.yaml"} {
		k.apply(filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", channel, name))
	}
	crds := k.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		u, err := crds.Get(context.Background(), "httproutes.gateway.networking.k8s.io", metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					time.Sleep(time.Second) // discovery catches up
					return
				}
			}
		}
		if time.Now().After(deadline) {
			k.t.Fatal("the HTTPRoute CRD was not established in 30s")
		}
	}
}

// standIn plays the parts a real cluster has and this one lacks: for each
// slot Deployment it runs the demo app on the slot's port on 127.0.0.1 (the
// "Pods", which checks reach through slotAddress), and writes the
// Deployment's status as its controller would once they are ready; for a
// version named stuck-* it reports the progress deadline missed instead.
type standIn struct {
	k      *kubeAPI
	ports  map[string]int // slot → port
	mu     sync.Mutex
	procs  map[string]*exec.Cmd // slot → running app
	vers   map[string]string
	cancel context.CancelFunc
	done   chan struct{}
}

func (k *kubeAPI) startStandIn(ports map[string]int) *standIn {
	ctx, cancel := context.WithCancel(context.Background())
	s := &standIn{k: k, ports: ports, procs: map[string]*exec.Cmd{}, vers: map[string]string{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			s.reconcile(ctx)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	k.t.Cleanup(s.stop)
	return s
}

func (s *standIn) stop() {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for slot, p := range s.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
		delete(s.procs, slot)
	}
}

func (s *standIn) reconcile(ctx context.Context) {
	list, err := s.k.admin.AppsV1().Deployments("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		slot := d.Labels[platform.KubeLabelSlot]
		port, ok := s.ports[slot]
		if !ok {
			continue
		}
		version := d.Labels[platform.KubeLabelVersion]
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s.mu.Lock()
		if p := s.procs[slot]; p != nil && (want == 0 || s.vers[slot] != version) {
			_ = p.Process.Kill()
			_ = p.Wait()
			delete(s.procs, slot)
		}
		if s.procs[slot] == nil && want > 0 && !strings.HasPrefix(version, "stuck-") {
			bin := filepath.Join(bins, "good", "demo-app")
			if version == "v3" || strings.HasPrefix(version, "bad-") {
				bin = filepath.Join(bins, "bad", "demo-app")
			}
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1", "VERSION="+version, "SWITCHYARD_SLOT="+slot)
			if err := cmd.Start(); err == nil {
				s.procs[slot], s.vers[slot] = cmd, version
			}
		}
		s.mu.Unlock()
		st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: want, ReadyReplicas: want, AvailableReplicas: want,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}}}
		if strings.HasPrefix(version, "stuck-") {
			st = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: want,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
					Message: fmt.Sprintf("ReplicaSet %q has timed out progressing.", d.Name)}}}
		} else if want > 0 && !s.listening(port) {
			continue // not ready until the app answers
		}
		if d.Status.ObservedGeneration == st.ObservedGeneration && d.Status.AvailableReplicas == st.AvailableReplicas &&
			d.Status.UpdatedReplicas == st.UpdatedReplicas && len(d.Status.Conditions) == len(st.Conditions) {
			continue
		}
		d.Status = st
		_, _ = s.k.admin.AppsV1().Deployments("shop").UpdateStatus(ctx, d, metav1.UpdateOptions{})
	}
}

func (s *standIn) listening(port int) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
