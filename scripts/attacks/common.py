"""Shared by the attack scripts: a private redis-server and a release bus
node on free ports, and a raw-socket WebSocket client that never reads."""
import asyncio, json, os, socket, subprocess, time, base64, re, urllib.request
BUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'target', 'release', 'bus')

def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p

class Stack:
    def __init__(self, *bus_args):
        self.rport = free_port()
        self.redis = subprocess.Popen(['redis-server', '--port', str(self.rport), '--save', '', '--appendonly', 'no'], stdout=subprocess.DEVNULL)
        while subprocess.run(['redis-cli', '-p', str(self.rport), 'ping'], capture_output=True).stdout.strip() != b'PONG':
            time.sleep(0.05)
        self.port = free_port()
        self.bus = subprocess.Popen([BUS, '--listen', f'127.0.0.1:{self.port}', '--redis', f'redis://127.0.0.1:{self.rport}/', *bus_args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        while b'listening' not in self.bus.stdout.readline():
            pass
        self.url = f'ws://127.0.0.1:{self.port}/ws/connect'
    def rss(self):
        for line in open(f'/proc/{self.bus.pid}/status'):
            if line.startswith('VmRSS'):
                return int(line.split()[1]) * 1024
    def hwm(self):
        for line in open(f'/proc/{self.bus.pid}/status'):
            if line.startswith('VmHWM'):
                return int(line.split()[1]) * 1024
    def connections(self):
        text = urllib.request.urlopen(f'http://127.0.0.1:{self.port}/metrics').read().decode()
        m = re.search(r'^bus_connections\{[^}]*\} (\S+)', text, re.M)
        return float(m.group(1))
    def info(self, field):
        out = subprocess.run(['redis-cli', '-p', str(self.rport), 'INFO'], capture_output=True, text=True).stdout
        return int(re.search(rf'^{field}:(\d+)', out, re.M).group(1))
    def redis_cpu(self):
        """Redis's CPU seconds so far (user + system)."""
        out = subprocess.run(['redis-cli', '-p', str(self.rport), 'INFO', 'cpu'], capture_output=True, text=True).stdout
        f = lambda k: float(re.search(rf'^{k}:([\d.]+)', out, re.M).group(1))
        return f('used_cpu_sys') + f('used_cpu_user')
    def bus_cpu(self):
        """The bus's CPU seconds so far (user + system)."""
        fields = open(f'/proc/{self.bus.pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    def stop(self):
        self.bus.kill(); self.redis.kill(); self.bus.wait(); self.redis.wait()

def raw_ws(port, agent, workspace):
    """A WebSocket client on a raw socket that never reads after its handshake."""
    s = socket.create_connection(('127.0.0.1', port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f'GET /ws/connect?agent={agent}&workspace={workspace} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
               f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n').encode())
    buf = b''
    while b'\r\n\r\n' not in buf:
        buf += s.recv(4096)
    return s

def send_text(s, text):
    data = text.encode(); mask = os.urandom(4)
    hdr = bytes([0x81])
    n = len(data)
    if n < 126: hdr += bytes([0x80 | n])
    elif n < 65536: hdr += bytes([0x80 | 126]) + n.to_bytes(2, 'big')
    else: hdr += bytes([0x80 | 127]) + n.to_bytes(8, 'big')
    s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
