"""Kafka half of the local stack: a single-node KRaft broker run from its Maven Central jars."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from olist_dev.settings import StackSettings
from olist_dev.stack.common import (
    StackError,
    check_ports_free,
    default_signals,
    pid_alive,
    port_in_use,
    read_pid,
    require_command,
    run_checked,
    tail,
    terminate,
    wait_until,
    write_private,
)
from olist_dev.stack.tls import TlsFiles, ensure_tls

MARKER = "kafka.Kafka"
POM = Path(__file__).with_name("kafka-pom.xml")


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)


def jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def security_properties(s: StackSettings, tls: TlsFiles) -> list[str]:
    """The SASL_SSL listener (PLAIN and SCRAM users: the stack's one user) and the SSL listener
    that requires a client certificate signed by the stack CA (mutual TLS)."""
    user, password = s.kafka_stack_user, s.kafka_sasl_password.get_secret_value()
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f"user_{user}={jaas_quote(password)};"
    )
    lines = [f"listener.name.sasl_ssl.sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}"]
    lines += [f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain}"]
    lines += [
        f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config={scram}" for m in SCRAM_MECHANISMS
    ]
    for listener in ("sasl_ssl", "ssl"):
        lines += [
            f"listener.name.{listener}.ssl.keystore.type=PEM",
            f"listener.name.{listener}.ssl.keystore.location={tls.pem('broker')}",
            f"listener.name.{listener}.ssl.truststore.type=PEM",
            f"listener.name.{listener}.ssl.truststore.location={tls.ca_cert}",
        ]
    lines.append("listener.name.ssl.ssl.client.auth=required")
    return lines


def server_properties(s: StackSettings, log_dir: Path, tls: TlsFiles | None = None) -> str:
    """Combined broker+controller, loopback only, replication factors of one. With ``tls`` (and
    the stack's SASL password) also SASL_SSL and mutual-TLS listeners for clients."""
    listeners = {"PLAINTEXT": s.kafka_port}
    if tls is not None:
        listeners |= {"SASL_SSL": s.kafka_sasl_port, "SSL": s.kafka_mtls_port}
    advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
    protocols = ",".join(f"{name}:{name}" for name in listeners)
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{s.kafka_controller_port}",
            f"listeners={advertised},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            f"advertised.listeners={advertised}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,{protocols}",
            *(security_properties(s, tls) if tls is not None else []),
            f"log.dirs={log_dir}",
            f"num.partitions={s.kafka_partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.hours=-1",
            "",
        ]
    )


def kafka_cluster_id() -> str:
    """Kafka's Uuid text form: URL-safe base64 of 16 random bytes, unpadded."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class Kafka:
    def __init__(self, settings: StackSettings):
        self.s = settings
        self.root = settings.stack_dir / "kafka"
        self.data = self.root / "data"
        self.config = self.root / "server.properties"
        self.log = self.root / "kafka.log"
        self.pid_file = self.root / "kafka.pid"
        self.classpath_file = self.root / f"classpath-{settings.kafka_version}.txt"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def running(self) -> bool:
        return pid_alive(self.pid(), MARKER)

    def check_ports(self) -> None:
        check_ports_free(
            "Kafka",
            [self.s.kafka_port, self.s.kafka_controller_port]
            + (
                [self.s.kafka_sasl_port, self.s.kafka_mtls_port]
                if self.s.kafka_sasl_password
                else []
            ),
            "OLIST_KAFKA_PORT / OLIST_KAFKA_CONTROLLER_PORT / OLIST_KAFKA_SASL_PORT / "
            "OLIST_KAFKA_MTLS_PORT",
        )

    def up(self) -> str:
        if self.running():
            self._ensure_scram_users()
            return f"Kafka already running (pid {self.pid()}, port {self.s.kafka_port})"
        self.check_ports()
        java = require_command(
            "java", "Java 17+ is needed to run Kafka (apt-get install openjdk-17-jre-headless)"
        )
        self.root.mkdir(parents=True, exist_ok=True)
        classpath = self._classpath()
        # 0600: it holds the PLAIN user's password.
        write_private(self.config, server_properties(self.s, self.data, self._tls()).encode())
        if not (self.data / "meta.properties").exists():
            run_checked(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", kafka_cluster_id(), "-c", str(self.config), *self._scram_format_args()],
                "Kafka storage format",
            )  # fmt: skip
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xmx{self.s.kafka_heap}",
                    f"-Xms{self.s.kafka_heap}",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", classpath,
                    MARKER,
                    str(self.config),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=default_signals,
            )  # fmt: skip
        self.pid_file.write_text(f"{proc.pid}\n")
        ready = wait_until(
            lambda: proc.poll() is not None or port_in_use(self.s.kafka_port), timeout=90
        )
        if proc.poll() is not None or not ready or not self._answers():
            terminate(proc.pid, MARKER)
            raise StackError(
                f"Kafka failed to start on port {self.s.kafka_port}:\n{tail(self.log)}"
            )
        self._ensure_scram_users()
        return f"Kafka started (pid {proc.pid}, port {self.s.kafka_port})"

    # --- security ----------------------------------------------------------------------------
    def _tls(self) -> TlsFiles | None:
        """The stack's certificates when the SASL/TLS listeners are on (a SASL password is set:
        `olist stack up` always sets one), else None (PLAINTEXT only)."""
        return ensure_tls(self.s.tls_dir) if self.s.kafka_sasl_password else None

    def _scram_format_args(self) -> list[str]:
        """SCRAM credentials written with the metadata at format time (KRaft has no ZooKeeper
        to add them to later; the broker's own API can, see _ensure_scram_users)."""
        if not self.s.kafka_sasl_password:
            return []
        password = self.s.kafka_sasl_password.get_secret_value()
        return [
            arg
            for mechanism in SCRAM_MECHANISMS
            for arg in (
                "--add-scram",
                f"{mechanism}=[name={self.s.kafka_stack_user},password={password}]",
            )
        ]

    def _ensure_scram_users(self) -> None:
        """Upsert the SCRAM users over the PLAINTEXT listener: a storage formatted before the
        SASL listener existed gets them too (idempotent, every `up`)."""
        if not self.s.kafka_sasl_password:
            return
        from kafka import KafkaAdminClient
        from kafka.admin import UserScramCredentialUpsertion

        password = self.s.kafka_sasl_password.get_secret_value()
        admin = KafkaAdminClient(bootstrap_servers=self._plaintext(), request_timeout_ms=10000)
        try:
            # One mechanism per request: the broker refuses two alterations of a user in one.
            errors = {}
            for mechanism in SCRAM_MECHANISMS:
                upsert = UserScramCredentialUpsertion(self.s.kafka_stack_user, mechanism, password)
                errors |= admin.alter_user_scram_credentials([upsert])
        finally:
            admin.close()
        if failed := {user: e for user, e in errors.items() if e}:
            raise StackError(f"Kafka SCRAM users not created: {failed}")

    def _plaintext(self) -> str:
        # The stack's own probes use its PLAINTEXT listener whatever the clients' security.
        return f"127.0.0.1:{self.s.kafka_port}"

    def _answers(self) -> bool:
        """The broker answers metadata requests (the port alone opens before it is ready)."""
        from kafka import KafkaAdminClient

        def ok() -> bool:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self._plaintext(), request_timeout_ms=5000
                )
            except Exception:
                return False
            try:
                admin.list_topics()
                return True
            except Exception:
                return False
            finally:
                admin.close()

        return wait_until(ok, timeout=60, interval=0.5)

    def down(self) -> str:
        pid = self.pid()
        if not self.running():
            return "Kafka not running"
        terminate(pid, MARKER, timeout=60)
        self.pid_file.unlink(missing_ok=True)
        return "Kafka stopped (data kept)"

    def _classpath(self) -> str:
        """Kafka's runtime classpath, resolved by Maven into its cache once and remembered."""
        if self.classpath_file.exists():
            classpath = self.classpath_file.read_text().strip()
            if all(Path(p).exists() for p in classpath.split(":")):
                return classpath
        mvn = require_command(
            "mvn", "Maven is needed to fetch Kafka's jars (apt-get install maven)"
        )
        print(f"resolving Apache Kafka {self.s.kafka_version} jars with Maven...", flush=True)
        tmp = self.classpath_file.with_suffix(".tmp")
        run_checked(
            [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath",
             f"-Dkafka.version={self.s.kafka_version}", f"-Dmdep.outputFile={tmp}"],
            f"downloading Kafka {self.s.kafka_version} from Maven Central",
        )  # fmt: skip
        shutil.move(tmp, self.classpath_file)
        return self.classpath_file.read_text().strip()
