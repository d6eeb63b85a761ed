#!/usr/bin/env bash
# Compile the app's plain-Kotlin core (no Android imports) and run its JUnit tests on the JVM,
# without Gradle or the Android SDK: Debian's kotlin + junit4 packages are enough.
#   bash android_demo/run_core_tests.sh [GOLDEN_DIR]   (default app/src/test/resources/golden)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GOLDEN=$(cd "${1:-$HERE/app/src/test/resources/golden}" && pwd)
for tool in kotlinc java; do
    command -v $tool >/dev/null || { echo "$tool not found: apt-get install kotlin junit4" >&2; exit 2; }
done
JUNIT=/usr/share/java/junit4.jar
HAMCREST=/usr/share/java/hamcrest-core.jar
[ -f $JUNIT ] || { echo "$JUNIT not found: apt-get install junit4" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
kotlinc -nowarn -cp "$JUNIT" -d "$OUT/classes" \
    "$HERE"/app/src/main/java/org/lightseg/demo/core/*.kt "$HERE"/app/src/test/java/org/lightseg/demo/core/*.kt
KOTLIN_LIB=$(dirname "$(readlink -f "$(command -v kotlinc)")")/../lib
STDLIB=$(ls "$KOTLIN_LIB"/kotlin-stdlib.jar /usr/share/java/kotlin-stdlib.jar 2>/dev/null | head -1)
java -Dgolden.dir="$GOLDEN" -Dtraining.domain.cases="$HERE/app/src/test/resources/training_domain_cases.json" \
    -cp "$OUT/classes:$JUNIT:$HAMCREST:$STDLIB" org.junit.runner.JUnitCore \
    org.lightseg.demo.core.GoldenTest org.lightseg.demo.core.TrainingDomainTest
