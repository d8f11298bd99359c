//! nginx beside ringway, for the tests that check ringway's behaviour
//! against nginx's own with the same requests (never from memory).

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{reserve_port, temp_dir, ReservedPort};

/// nginx in the foreground, one process (`master_process off`), killed on
/// drop.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _port: ReservedPort,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx binary on `PATH` or in `/usr/sbin`, if installed.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

impl Nginx {
    /// Start `bin` with one `server` whose `listen` is `listen ADDR
    /// {listen_params} reuseport;` on a free port, then the directives of
    /// `server` (without braces). Waits (bounded) until it accepts.
    pub fn start(bin: &std::path::Path, tag: &str, listen_params: &str, server: &str) -> Nginx {
        Self::start_with_http(bin, tag, "", listen_params, server)
    }

    /// `start` with `http` directives (as `upstream` blocks, or another
    /// server: `{LISTEN}` in them is the server's address) before the
    /// server.
    pub fn start_with_http(
        bin: &std::path::Path,
        tag: &str,
        http: &str,
        listen_params: &str,
        server: &str,
    ) -> Nginx {
        let dir = temp_dir(tag);
        // The port is held (SO_REUSEPORT, not listening) until nginx has
        // bound it beside the reservation (`reuseport`).
        let port = reserve_port();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let d = dir.display();
        let conf = format!(
            r#"{user}
worker_processes 1;
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  {http}
  server {{
    listen {addr} {listen_params} reuseport;
    {server}
  }}
}}
"#,
            user = if root { "user root;" } else { "" },
            addr = port.addr,
            http = http.replace("{LISTEN}", &port.addr.to_string()),
        );
        Self::spawn(bin, dir, &conf, port)
    }

    /// nginx on a whole configuration file of its own (`events`, `http`
    /// …): the process settings a test needs (foreground, one process,
    /// pid, logs and temporary files in its directory) are put around it.
    /// `addr` is where it listens (waited for, bounded); `held` the port
    /// reservation it binds beside (`reuseport` in `conf`), kept until it
    /// stops.
    pub fn start_file(bin: &std::path::Path, tag: &str, conf: &str, held: ReservedPort) -> Nginx {
        let dir = temp_dir(tag);
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let d = dir.display();
        let inside_http = format!(
            "access_log {d}/access.log; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; \
             fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;"
        );
        let body = if conf.contains("http {") {
            conf.replacen("http {", &format!("http {{ {inside_http}"), 1)
        } else {
            format!("http {{ {inside_http}\n{conf}\n}}")
        };
        let events = if body.contains("events {") {
            ""
        } else {
            "events { worker_connections 256; }"
        };
        let full = format!(
            "{user}\nworker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n{events}\n{body}\n",
            user = if root { "user root;" } else { "" },
        );
        Self::spawn(bin, dir, &full, held)
    }

    /// Run `bin` on `conf` (written into `dir`), listening where `held`
    /// is reserved, once it accepts there.
    fn spawn(bin: &std::path::Path, dir: PathBuf, conf: &str, held: ReservedPort) -> Nginx {
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut ng = Nginx {
            child,
            addr: held.addr,
            dir,
            _port: held,
        };
        ng.wait_accepting();
        ng
    }

    fn wait_accepting(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(self.addr).is_ok() {
                return;
            }
            let exited = self.child.try_wait().expect("try_wait").is_some();
            if exited || Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                panic!("nginx did not start on {}:\n{log}", self.addr);
            }
            // Bounded poll of a process that says nothing when it is ready.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}
