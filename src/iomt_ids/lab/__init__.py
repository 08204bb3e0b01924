"""The traffic lab: real attack tools against simulated medical devices, in isolated namespaces.

* :mod:`~iomt_ids.lab.topology`: lab hosts and addresses; :func:`check_lab_target` (pure).
* :mod:`~iomt_ids.lab.netns`: :class:`Lab`, namespaces + bridge, isolation checks, teardown.
* :mod:`~iomt_ids.lab.services`, :mod:`~iomt_ids.lab.devices`: EHR/DNS server, broker config, devices.
* :mod:`~iomt_ids.lab.mqtt_tools`: MQTT connect/publish floods and malformed packets.
* :mod:`~iomt_ids.lab.attacks`: the 19 scenarios as data (tool + arguments + targets).
* :mod:`~iomt_ids.lab.capture`: tcpdump on the lab bridge, packet counts.
* :mod:`~iomt_ids.lab.runner`: run scenarios, write ``manifest.json``.
* :mod:`~iomt_ids.lab.dataset`: lab pcaps -> dataset-named feature CSVs.

Running the lab needs root and Debian tools (see :func:`iomt_ids.lab.netns.check_environment`);
everything in ``topology`` and ``attacks`` is pure and runs anywhere. Importing this
package has no side effects and imports nothing heavy.
"""

from __future__ import annotations

from iomt_ids.lab.topology import LAB_SUBNET, LabHost, Topology, check_lab_target, default_topology

__all__ = ["LAB_SUBNET", "LabHost", "Topology", "check_lab_target", "default_topology"]
