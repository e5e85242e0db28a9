// kindnetd: a small stand-in for kind's default CNI daemon, built here because kind's own kindnetd
// source (github.com/kubernetes-sigs/kindnet, formerly in kind's images/kindnetd) is not served by
// the Go module proxy, and these machines reach no container registry.
//
// It runs as kind's default-cni.yaml DaemonSet runs kindnetd (hostNetwork, NET_ADMIN and NET_RAW,
// env HOST_IP, POD_SUBNET and CONTROL_PLANE_ENDPOINT, /etc/cni/net.d mounted), and does what a
// kind cluster needs from it, every few seconds:
//   - finds its own Node (the one whose InternalIP is HOST_IP) and writes
//     /etc/cni/net.d/10-kindnet.conflist: ptp + host-local over the node's podCIDRs, then portmap
//     (the CNI plugins are in the node image's /opt/cni/bin);
//   - routes every other node's podCIDRs through that node's InternalIP (`ip route replace`);
//   - masquerades traffic from the pod subnet to anything outside it (iptables chain KINDNET-MASQ).
//
// Built by hack/offline/kind-node-image.sh against k8s.io/client-go of the cluster's minor version.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	cniConfigPath = "/etc/cni/net.d/10-kindnet.conflist"
	masqChain     = "KINDNET-MASQ"
	interval      = 10 * time.Second
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	hostIP := os.Getenv("HOST_IP")
	if hostIP == "" {
		log.Fatal("HOST_IP is not set")
	}
	podSubnets := splitList(os.Getenv("POD_SUBNET"))

	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	// kube-proxy may not have programmed the kubernetes Service yet: talk to the API server directly.
	if ep := os.Getenv("CONTROL_PLANE_ENDPOINT"); ep != "" {
		cfg.Host = "https://" + ep
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	log.Printf("kindnetd: host %s, pod subnets %v, API server %s", hostIP, podSubnets, cfg.Host)

	masqReady := map[string]bool{}
	for {
		if err := reconcile(context.Background(), client, hostIP, podSubnets, masqReady); err != nil {
			log.Printf("reconcile: %v", err)
		}
		time.Sleep(interval)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func isIPv6(s string) bool { return strings.Contains(s, ":") }

func reconcile(ctx context.Context, client kubernetes.Interface, hostIP string, podSubnets []string, masqReady map[string]bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	var errs []string
	for i := range nodes.Items {
		node := &nodes.Items[i]
		ips := internalIPs(node)
		cidrs := node.Spec.PodCIDRs
		if len(cidrs) == 0 && node.Spec.PodCIDR != "" {
			cidrs = []string{node.Spec.PodCIDR}
		}
		if contains(ips, hostIP) {
			if len(cidrs) == 0 {
				errs = append(errs, fmt.Sprintf("own node %s has no podCIDR yet", node.Name))
				continue
			}
			if err := writeCNIConfig(cidrs, mtuOf(hostIP)); err != nil {
				errs = append(errs, err.Error())
			}
			continue
		}
		for _, cidr := range cidrs {
			for _, ip := range ips {
				if isIPv6(ip) != isIPv6(cidr) {
					continue
				}
				if out, err := exec.Command("ip", "route", "replace", cidr, "via", ip).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Sprintf("route %s via %s: %v: %s", cidr, ip, err, out))
				}
			}
		}
	}
	for _, subnet := range podSubnets {
		if masqReady[subnet] {
			continue
		}
		if err := ensureMasquerade(subnet); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		masqReady[subnet] = true
		log.Printf("masquerading traffic from %s to outside it", subnet)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func internalIPs(node *corev1.Node) []string {
	var ips []string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ips = append(ips, a.Address)
		}
	}
	return ips
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mtuOf returns the MTU of the interface holding ip (1500 when not found).
func mtuOf(ip string) int {
	want := net.ParseIP(ip)
	ifaces, err := net.Interfaces()
	if err != nil {
		return 1500
	}
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(want) {
				return iface.MTU
			}
		}
	}
	return 1500
}

func writeCNIConfig(cidrs []string, mtu int) error {
	ranges := [][]map[string]string{}
	routes := []map[string]string{}
	for _, c := range cidrs {
		ranges = append(ranges, []map[string]string{{"subnet": c}})
		if isIPv6(c) {
			routes = append(routes, map[string]string{"dst": "::/0"})
		} else {
			routes = append(routes, map[string]string{"dst": "0.0.0.0/0"})
		}
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"mtu":    mtu,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state",
					"routes":  routes,
					"ranges":  ranges,
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
			},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(cniConfigPath); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(cniConfigPath), ".10-kindnet.conflist.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing CNI config: %w", err)
	}
	if err := os.Rename(tmp, cniConfigPath); err != nil {
		return fmt.Errorf("writing CNI config: %w", err)
	}
	log.Printf("wrote %s for %v (mtu %d)", cniConfigPath, cidrs, mtu)
	return nil
}

// ensureMasquerade: POSTROUTING -s subnet -> KINDNET-MASQ; in it, RETURN for the pod subnet, else
// MASQUERADE.
func ensureMasquerade(subnet string) error {
	ipt := "iptables"
	if isIPv6(subnet) {
		ipt = "ip6tables"
	}
	run := func(args ...string) error {
		out, err := exec.Command(ipt, append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", ipt, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	_ = run("-N", masqChain) // exists already after a restart
	if err := run("-F", masqChain); err != nil {
		return err
	}
	if err := run("-A", masqChain, "-d", subnet, "-j", "RETURN"); err != nil {
		return err
	}
	if err := run("-A", masqChain, "-j", "MASQUERADE"); err != nil {
		return err
	}
	jump := []string{"POSTROUTING", "-s", subnet, "-m", "comment", "--comment", "kindnet masquerade", "-j", masqChain}
	if run(append([]string{"-C"}, jump...)...) == nil {
		return nil
	}
	return run(append([]string{"-A"}, jump...)...)
}
