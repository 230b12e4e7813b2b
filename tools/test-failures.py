"""Prints the failed tests of TRX logs (name, message, the top of the stack) so they end a test run's output."""
import sys
import xml.etree.ElementTree as ET

NS = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}

failed = []
for path in sys.argv[1:]:
    for result in ET.parse(path).getroot().iterfind(".//t:UnitTestResult", NS):
        if result.get("outcome") != "Failed":
            continue
        message = result.findtext("t:Output/t:ErrorInfo/t:Message", default="", namespaces=NS).strip()
        stack = result.findtext("t:Output/t:ErrorInfo/t:StackTrace", default="", namespaces=NS).strip()
        failed.append((result.get("testName"), result.get("duration"), message, stack))

print(f"\n==== {len(failed)} failed test(s) ====")
for name, duration, message, stack in failed:
    print(f"FAILED {name} [{duration}]")
    for line in message.splitlines()[:40]:
        print(f"  {line}")
    for line in stack.splitlines()[:12]:
        print(f"    {line}")
