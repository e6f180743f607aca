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
)

MARKER = "kafka.Kafka"
POM = Path(__file__).with_name("kafka-pom.xml")


def server_properties(s: StackSettings, log_dir: Path) -> str:
    """Combined broker+controller, loopback only, replication factors of one."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{s.kafka_controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
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
            [self.s.kafka_port, self.s.kafka_controller_port],
            "OLIST_KAFKA_PORT / OLIST_KAFKA_CONTROLLER_PORT",
        )

    def up(self) -> str:
        if self.running():
            return f"Kafka already running (pid {self.pid()}, port {self.s.kafka_port})"
        self.check_ports()
        java = require_command(
            "java", "Java 17+ is needed to run Kafka (apt-get install openjdk-17-jre-headless)"
        )
        self.root.mkdir(parents=True, exist_ok=True)
        classpath = self._classpath()
        self.config.write_text(server_properties(self.s, self.data))
        if not (self.data / "meta.properties").exists():
            run_checked(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", kafka_cluster_id(), "-c", str(self.config)],
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
        return f"Kafka started (pid {proc.pid}, port {self.s.kafka_port})"

    def _answers(self) -> bool:
        """The broker answers metadata requests (the port alone opens before it is ready)."""
        from kafka import KafkaAdminClient

        def ok() -> bool:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=f"127.0.0.1:{self.s.kafka_port}", request_timeout_ms=5000
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
